"""The refusals of the account services, in the users' words (never revealing who exists)."""

from __future__ import annotations

from typing import ClassVar

from guichet.errors import BadRequest, Forbidden, GuichetError, NotFound, Unauthenticated


class FormInvalid(BadRequest):
    """Some fields are wrong; ``errors`` maps each field name to its message."""

    code = "form_invalid"
    title = "Le formulaire contient des erreurs"

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(self.title, field=next(iter(errors), None))
        self.errors = errors


class SignInFailed(Unauthenticated):
    """Wrong email, wrong password, unknown account or locked account: one message for all."""

    code = "sign_in_failed"
    title = (
        "Adresse électronique ou mot de passe incorrect. Après cinq échecs, le compte est "
        "bloqué quinze minutes : réessayez plus tard ou réinitialisez votre mot de passe."
    )


class EmailNotVerified(Forbidden):
    """Shown only to whoever typed the right password."""

    code = "email_not_verified"
    title = (
        "Votre adresse électronique n'est pas encore vérifiée : suivez le lien du courriel "
        "que nous vous avons envoyé (un nouveau lien vient de partir si le précédent a expiré)."
    )


class AccountTokenInvalid(BadRequest):
    """The link is unknown, already used or expired (we do not say which)."""

    code = "account_token_invalid"
    title = "Ce lien n'est plus valable : il a déjà servi ou il a expiré."


class InvitationInvalid(BadRequest):
    """The invitation link is unknown, accepted, cancelled or expired (we do not say which)."""

    code = "invitation_invalid"
    title = (
        "Cette invitation n'est plus valable : elle a déjà servi, elle a été annulée ou elle a "
        "expiré. Demandez à un membre de l'organisation de vous en envoyer une nouvelle."
    )


class InvitationForAnotherAccount(Forbidden):
    """Signed in as someone else than the invited address: accepting would verify nothing."""

    code = "invitation_other_account"
    title = (
        "Cette invitation est adressée à une autre adresse électronique que celle de votre "
        "compte : déconnectez-vous, puis rouvrez le lien."
    )


class OrganisationNotFound(NotFound):
    """Not a member: the organisation's members and invitations are not shown."""

    code = "organisation_not_found"
    title = "Organisation introuvable"


class MayNotInvite(Forbidden):
    code = "organisation_may_not_invite"
    title = (
        "Seuls le demandeur et le représentant légal de l'organisation peuvent inviter des "
        "membres ou annuler une invitation."
    )


class TooSoon(GuichetError):
    """A mail was sent a moment ago: another one would only flood the mailbox."""

    status = 429
    code = "mail_too_soon"
    title = "Un courriel vient de partir à cette adresse : réessayez dans une minute."


class LastInviter(GuichetError):
    """Removing this role would leave nobody able to invite (or to remove) anyone."""

    status = 409
    code = "organisation_last_inviter"
    title = (
        "L'organisation doit garder au moins un demandeur ou un représentant légal : "
        "invitez-en un autre avant de retirer ce rôle."
    )


class SecondFactorInvalid(Unauthenticated):
    """A wrong, expired or already used code, or a key's answer that does not verify."""

    code = "second_factor_invalid"
    title = (
        "Code ou clé de sécurité refusé : le code est faux, a expiré ou a déjà servi. "
        "Saisissez le code affiché maintenant par votre application, ou utilisez votre clé."
    )
    locked: ClassVar[str] = (
        "Trop de seconds facteurs refusés : le compte est bloqué quinze minutes. "
        "Reconnectez-vous ensuite avec votre mot de passe."
    )


class LastSecondFactor(GuichetError):
    """Removing this factor would leave an account that must have one without any."""

    status = 409
    code = "last_second_factor"
    title = (
        "Votre compte doit garder au moins un second facteur : ajoutez-en un autre avant de "
        "retirer celui-ci."
    )

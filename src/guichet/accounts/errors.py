"""The refusals of the account services, in the users' words (never revealing who exists)."""

from __future__ import annotations

from guichet.errors import BadRequest, Forbidden, Unauthenticated


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

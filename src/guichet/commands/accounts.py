"""``guichet user``: add provider staff accounts, list accounts, and invite a partner member
(``guichet user member add``)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from stdnum.fr import siret as stdnum_siret

from guichet.accounts import staff
from guichet.accounts.errors import FormInvalid
from guichet.accounts.models import (
    PARTNER_ROLE_LABELS,
    PROVIDER_ROLE_LABELS,
    Membership,
    PartnerRole,
    ProviderRole,
    User,
)
from guichet.accounts.organisations import INVITATION_LIFETIME, OrganisationService
from guichet.accounts.service import AccountService
from guichet.habilitation.models import Organisation
from guichet.mail import build_mailer
from guichet.runtime import open_runtime

app = typer.Typer(
    help="Comptes du portail : ajouter un agent (instructeur, exploitant…), lister les comptes, "
    "désactiver, réactiver ou supprimer un compte.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
member_app = typer.Typer(
    help="Membres des organisations partenaires : inviter une personne, lister les membres.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(member_app, name="member")
console = Console(soft_wrap=True)


@app.command("add")
def add(
    email: Annotated[str, typer.Option("--email", help="Adresse électronique de l'agent.")],
    role: Annotated[
        ProviderRole,
        typer.Option("--role", help="Rôle chez le fournisseur.", case_sensitive=False),
    ],
    name: Annotated[str, typer.Option("--name", help="Prénom et nom affichés.")] = "",
) -> None:
    """Crée le compte d'un agent (ou lui ajoute le rôle) et affiche un lien pour choisir son
    mot de passe, valable 72 heures."""
    runtime = open_runtime()
    try:
        service = AccountService(
            runtime.session_factory,
            runtime.clock,
            build_mailer(runtime.settings, runtime.clock),
            runtime.settings.resolved_portal_url,
        )
        try:
            user_id, link = service.add_staff_user(email, name, role)
        except FormInvalid as exc:
            console.print(f"[red]{exc.errors.get('email', exc.detail)}[/red]")
            raise typer.Exit(2) from None
        console.print(f"Compte {user_id} : {PROVIDER_ROLE_LABELS[role]}.")
        console.print("Lien pour choisir le mot de passe (72 heures, un seul usage) :")
        console.print(link, highlight=False)
    finally:
        runtime.close()


@app.command("list")
def list_users() -> None:
    """Liste les comptes, leurs rôles et leurs organisations."""
    runtime = open_runtime()
    try:
        with runtime.session_factory() as session:
            users = session.scalars(
                select(User)
                .order_by(User.created_at)
                .options(
                    selectinload(User.provider_roles),
                    selectinload(User.memberships).selectinload(Membership.organisation),
                )
            ).all()
            table = Table("id", "adresse", "vérifiée", "état", "rôles", "organisations")
            for u in users:
                table.add_row(
                    str(u.id),
                    u.email,
                    "oui" if u.email_verified_at else "non",
                    "désactivé" if u.disabled_at else "actif",
                    ", ".join(PROVIDER_ROLE_LABELS[g.role] for g in u.provider_roles),
                    ", ".join(f"{m.organisation.siret} ({m.role.value})" for m in u.memberships),
                )
        console.print(table)
    finally:
        runtime.close()


Ident = Annotated[str, typer.Argument(help="Adresse électronique (ou identifiant) du compte.")]
ActorOption = Annotated[str, typer.Option("--actor", help="Qui agit (consigné).")]


def _staff_change(ident: str, change: str, actor: str) -> None:
    """Disable, enable or remove one account, in one transaction."""
    from guichet.db import transaction

    runtime = open_runtime()
    try:
        with transaction(runtime.session_factory) as session:
            try:
                user = staff.find_user(session, ident)
            except FormInvalid as exc:
                console.print(f"[red]{exc.errors['email']}[/red]")
                raise typer.Exit(2) from None
            email, now = user.email, runtime.clock.now()
            if change == "disable":
                done = staff.disable(session, user, now, actor)
                message = "désactivé : plus de connexion, sessions fermées" if done else None
            elif change == "enable":
                done = staff.enable(session, user, now, actor)
                message = (
                    "réactivé (mot de passe à choisir par « mot de passe oublié » s'il n'en a plus)"
                    if done
                    else None
                )
            else:
                removal = staff.remove(session, user, now, actor)
                message = (
                    "supprimé"
                    if removal is staff.Removal.DELETED
                    else "rôles retirés et compte désactivé (conservé : il figure dans "
                    "l'historique des demandes ou dans une organisation partenaire)"
                )
        if message is None:
            state = "déjà désactivé" if change == "disable" else "n'était pas désactivé"
            console.print(f"Compte {email} : {state}, rien à faire.")
            return
        console.print(f"Compte {email} : {message}.")
    finally:
        runtime.close()


@app.command("disable")
def disable(ident: Ident, actor: ActorOption = "operator") -> None:
    """Désactive un compte : il ne peut plus se connecter, ses sessions sont fermées et ses
    liens de mot de passe annulés. Réversible (guichet user enable)."""
    _staff_change(ident, "disable", actor)


@app.command("enable")
def enable(ident: Ident, actor: ActorOption = "operator") -> None:
    """Réactive un compte désactivé."""
    _staff_change(ident, "enable", actor)


@app.command("remove")
def remove(ident: Ident, actor: ActorOption = "operator") -> None:
    """Retire ses rôles d'agent à un compte et le supprime ; s'il figure dans l'historique
    d'une demande (ou dans une organisation partenaire), il est conservé, désactivé et sans
    mot de passe."""
    _staff_change(ident, "remove", actor)


@member_app.command("add")
def member_add(
    siret: Annotated[str, typer.Option("--siret", help="SIRET de l'organisation inscrite.")],
    email: Annotated[str, typer.Option("--email", help="Adresse électronique de la personne.")],
    role: Annotated[
        PartnerRole,
        typer.Option("--role", help="Rôle dans l'organisation.", case_sensitive=False),
    ],
) -> None:
    """Invite une personne dans une organisation avec un rôle : le courriel part (boîte
    d'envoi locale sans SMTP) et le lien est affiché. La personne crée son compte, ou se
    connecte, et rejoint l'organisation en suivant le lien."""
    runtime = open_runtime()
    try:
        accounts = AccountService(
            runtime.session_factory,
            runtime.clock,
            build_mailer(runtime.settings, runtime.clock),
            runtime.settings.resolved_portal_url,
        )
        try:
            invited = OrganisationService(accounts).invite_by_siret(siret, email, role.value)
        except FormInvalid as exc:
            for message in exc.errors.values():
                console.print(f"[red]{message}[/red]")
            raise typer.Exit(2) from None
        days = INVITATION_LIFETIME.days
        console.print(f"Invitation {invited.invitation_id} envoyée : {PARTNER_ROLE_LABELS[role]}.")
        console.print(f"Lien d'invitation ({days} jours, un seul usage) :")
        console.print(invited.link, highlight=False)
    finally:
        runtime.close()


@member_app.command("list")
def member_list(
    siret: Annotated[str, typer.Option("--siret", help="SIRET de l'organisation.")],
) -> None:
    """Liste les membres d'une organisation et leurs rôles."""
    runtime = open_runtime()
    try:
        with runtime.session_factory() as session:
            rows = session.execute(
                select(User.email, User.email_verified_at, Membership.role)
                .join(Membership, Membership.user_id == User.id)
                .join(Organisation, Organisation.id == Membership.organisation_id)
                .where(Organisation.siret == stdnum_siret.compact(siret))
                .order_by(Membership.created_at)
            ).all()
        table = Table("adresse", "vérifiée", "rôle")
        for address, verified_at, member_role in rows:
            verified = "oui" if verified_at else "non"
            table.add_row(address, verified, PARTNER_ROLE_LABELS[member_role])
        console.print(table)
    finally:
        runtime.close()


@app.command("reset-second-factor")
def reset_second_factor(ident: Ident) -> None:
    """Retire tous les seconds facteurs et codes de secours d'un compte qui les a perdus (après
    avoir vérifié qui le demande) et ferme ses sessions : la personne en enregistre un nouveau
    à sa prochaine connexion (issue 14, authentification forte)."""
    from guichet.accounts.second_factor import reset_second_factors
    from guichet.db import transaction

    runtime = open_runtime()
    try:
        with transaction(runtime.session_factory) as session:
            try:
                user = staff.find_user(session, ident)
            except FormInvalid as exc:
                console.print(f"[red]{exc.errors['email']}[/red]")
                raise typer.Exit(2) from None
            email = user.email
            removed = reset_second_factors(session, user.id)
        console.print(
            f"Compte {email} : {removed} second(s) facteur(s) retiré(s), sessions fermées ; "
            "un nouveau sera demandé à la prochaine connexion."
        )
    finally:
        runtime.close()

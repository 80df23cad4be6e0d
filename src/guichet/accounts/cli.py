"""``guichet user``: add provider staff accounts and list accounts."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from guichet.accounts.errors import FormInvalid
from guichet.accounts.models import PROVIDER_ROLE_LABELS, Membership, ProviderRole, User
from guichet.accounts.service import AccountService
from guichet.mail import build_mailer
from guichet.runtime import open_runtime

app = typer.Typer(
    help="Comptes du portail : ajouter un agent (instructeur, exploitant…), lister les comptes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
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
            table = Table("id", "adresse", "vérifiée", "rôles", "organisations")
            for u in users:
                table.add_row(
                    str(u.id),
                    u.email,
                    "oui" if u.email_verified_at else "non",
                    ", ".join(PROVIDER_ROLE_LABELS[g.role] for g in u.provider_roles),
                    ", ".join(f"{m.organisation.siret} ({m.role.value})" for m in u.memberships),
                )
        console.print(table)
    finally:
        runtime.close()

"""``guichet federation …``: the sandbox federation's clients, and its consent records' purge."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from guichet.federation.clients import assign_owner, list_clients, register_client
from guichet.federation.consent import RETENTION_MONTHS, months_before, purge_consents
from guichet.federation.encryption import public_jwk_of
from guichet.federation.models import ClientKind
from guichet.habilitation.models import Organisation
from guichet.runtime import open_runtime

app = typer.Typer(help="FranceConnect du bac à sable : clients.", no_args_is_help=True)
client_app = typer.Typer(help="Clients de la fédération.", no_args_is_help=True)
app.add_typer(client_app, name="client")
consent_app = typer.Typer(help="Consentements des usagers.", no_args_is_help=True)
app.add_typer(consent_app, name="consent")


@app.callback()
def federation() -> None:
    """FranceConnect du bac à sable (fournisseur OpenID Connect) : clients et consentements."""


@client_app.command("add")
def add(
    kind: Annotated[
        ClientKind,
        typer.Option(
            "--kind",
            help="service-provider : un partenaire qui connecte des usagers ; "
            "data-provider : le fournisseur de données qui vérifie leurs jetons.",
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="Nom affiché aux usagers.")],
    redirect_uri: Annotated[
        list[str] | None,
        typer.Option("--redirect-uri", help="URL de retour (exacte ; répétable)."),
    ] = None,
    post_logout_redirect_uri: Annotated[
        list[str] | None,
        typer.Option("--post-logout-redirect-uri", help="URL après déconnexion (répétable)."),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="Portée autorisée (répétable) ; par défaut openid et les portées d'identité.",
        ),
    ] = None,
    habilitation_id: Annotated[
        uuid.UUID | None,
        typer.Option("--habilitation-id", help="Habilitation à laquelle ce client appartient."),
    ] = None,
    siret: Annotated[
        str | None,
        typer.Option(
            "--siret",
            help="SIRET de l'organisation propriétaire du client : seules ses demandes "
            "pourront le lier à une habilitation (par défaut, celle de --habilitation-id ; "
            "sans propriétaire, le client ne peut être lié à aucune habilitation).",
        ),
    ] = None,
    encryption_key: Annotated[
        Path | None,
        typer.Option(
            "--encryption-key",
            help="Fournisseur de données : sa clé publique de chiffrement (JWK ou PEM, "
            "EC P-256 ou RSA ≥ 2048) ; les réponses de /checktoken lui sont alors chiffrées.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Enregistrer un client ; son secret est affiché une seule fois."""
    runtime = open_runtime()
    try:
        jwk: dict[str, Any] | None = None
        if encryption_key is not None:
            jwk = public_jwk_of(encryption_key.read_bytes())
        with runtime.session_factory() as session, session.begin():
            owner: uuid.UUID | None = None
            if siret is not None:
                owner = session.scalar(
                    select(Organisation.id).where(Organisation.siret == siret.strip())
                )
                if owner is None:
                    raise ValueError(f"aucune organisation avec le SIRET {siret.strip()}")
            registered = register_client(
                session,
                kind=kind,
                name=name,
                now=runtime.clock.now(),
                redirect_uris=redirect_uri or (),
                post_logout_redirect_uris=post_logout_redirect_uri or (),
                scopes=scope,
                habilitation_id=habilitation_id,
                encryption_jwk=jwk,
                organisation_id=owner,
            )
    except ValueError as exc:
        Console(stderr=True).print(f"[red]Refusé :[/red] {exc}")
        raise typer.Exit(2) from exc
    finally:
        runtime.close()
    out = Console()
    out.print(f"client_id     {registered.client_id}")
    out.print(f"client_secret {registered.client_secret}")
    out.print("Conservez le secret maintenant : il ne sera plus jamais affiché.")
    if kind is ClientKind.SERVICE_PROVIDER and registered.client.organisation_id is None:
        out.print(
            "Ce client n'a pas de propriétaire : aucune demande ne pourra le lier à une "
            "habilitation avant « guichet federation client assign-owner »."
        )


@client_app.command("assign-owner")
def assign_owner_(
    client_id: Annotated[str, typer.Argument(help="Identifiant (client_id) du client.")],
    siret: Annotated[
        str,
        typer.Option(
            "--siret",
            help="SIRET de l'organisation propriétaire : seules ses demandes pourront lier "
            "ce client à une habilitation.",
        ),
    ],
) -> None:
    """Attribuer un client de la fédération à une organisation (son propriétaire).

    Refusé pour les clients de guichet lui-même (portail, fournisseur de données) et pour
    un client déjà lié à une habilitation d'une autre organisation.
    """
    runtime = open_runtime()
    try:
        with runtime.session_factory() as session, session.begin():
            row = assign_owner(session, client_id.strip(), siret)
            name = row.name
    except ValueError as exc:
        Console(stderr=True).print(f"[red]Refusé :[/red] {exc}")
        raise typer.Exit(2) from exc
    finally:
        runtime.close()
    Console().print(f"Le client « {name} » appartient désormais à l'organisation {siret.strip()}.")


@client_app.command("list")
def list_() -> None:
    """Lister les clients (jamais leurs secrets)."""
    runtime = open_runtime()
    try:
        with runtime.session_factory() as session:
            rows = list_clients(session)
            sirets = {
                row.id: row.siret
                for row in session.execute(select(Organisation.id, Organisation.siret))
            }
            table = Table(title="Clients de la fédération")
            columns = ("client_id", "type", "nom", "propriétaire", "habilitation")
            for column in (*columns, "URL de retour", "portées"):
                table.add_column(column)
            for row in rows:
                if row.internal:
                    owner = "guichet"
                elif row.organisation_id is not None:
                    owner = sirets.get(row.organisation_id, str(row.organisation_id))
                else:
                    owner = "aucun"
                table.add_row(
                    row.client_id,
                    row.kind.value,
                    row.name,
                    owner,
                    str(row.habilitation_id or "—"),
                    "\n".join(row.redirect_uris) or "—",
                    " ".join(row.scopes) or "—",
                )
    finally:
        runtime.close()
    Console(width=200).print(table)


@consent_app.command("purge")
def purge() -> None:
    """Supprimer les consentements enregistrés il y a plus de 36 mois [003 art. 4]."""
    runtime = open_runtime()
    try:
        now = runtime.clock.now()
        with runtime.session_factory() as session, session.begin():
            deleted = purge_consents(session, now)
    finally:
        runtime.close()
    cutoff = months_before(now, RETENTION_MONTHS)
    Console().print(
        f"{deleted} consentement(s) supprimé(s), enregistrés avant le "
        f"{cutoff:%d/%m/%Y %H:%M} UTC ({RETENTION_MONTHS} mois)."
    )

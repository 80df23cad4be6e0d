"""``guichet federation …``: the sandbox federation's clients, and its consent records' purge."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from guichet.federation.clients import list_clients, register_client
from guichet.federation.consent import RETENTION_MONTHS, months_before, purge_consents
from guichet.federation.encryption import public_jwk_of
from guichet.federation.models import ClientKind
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


@client_app.command("list")
def list_() -> None:
    """Lister les clients (jamais leurs secrets)."""
    runtime = open_runtime()
    try:
        with runtime.session_factory() as session:
            rows = list_clients(session)
            table = Table(title="Clients de la fédération")
            for column in ("client_id", "type", "nom", "habilitation", "URL de retour", "portées"):
                table.add_column(column)
            for row in rows:
                table.add_row(
                    row.client_id,
                    row.kind.value,
                    row.name,
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

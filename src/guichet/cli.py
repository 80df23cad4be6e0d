"""The ``guichet`` command: run the product, and operate it (habilitations, journal, sandbox…)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from guichet import __version__
from guichet.cli_options import CommandDataDir, use_data_dir
from guichet.logs import configure as configure_logs
from guichet.settings import Settings, get_settings, use_settings, with_overrides

if TYPE_CHECKING:
    from guichet.runtime import Runtime

console = Console(stderr=True, soft_wrap=True)
out = Console()

app = typer.Typer(
    name="guichet",
    help="Publier les API d'un fournisseur de données aux partenaires habilités, "
    "en appliquant leur convention à chaque appel.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    add_completion=False,
)
habilitation_app = typer.Typer(
    help="Lister les habilitations ; en suspendre, rétablir ou révoquer une ; "
    "renouveler un secret.",
    no_args_is_help=True,
)
serve_app = typer.Typer(
    help="Servir une seule origine (déploiements à plusieurs processus).", no_args_is_help=True
)
app.add_typer(habilitation_app, name="habilitation")
app.add_typer(serve_app, name="serve")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="GUICHET_DATA_DIR",
        help="Répertoire de données (par défaut ./var).",
        file_okay=False,
        show_default=False,
    ),
]


def _version(value: bool) -> None:
    if value:
        out.print(f"guichet {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    data_dir: DataDir = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Afficher la version."),
    ] = False,
) -> None:
    """guichet — la plateforme d'API d'un fournisseur public de données."""
    if data_dir is not None:
        use_settings(with_overrides(data_dir=data_dir))
    configure_logs(get_settings().log_level)


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[bold red]Erreur :[/] {message}")
    return typer.Exit(code)


# ---------------------------------------------------------------- run / init


@app.command()
def init(
    households: Annotated[
        int,
        typer.Option(
            min=1, max=1_000_000, help="Foyers fictifs du bac à sable au premier démarrage."
        ),
    ] = 10_000,
    production: Annotated[
        bool,
        typer.Option(
            "--production",
            help="Déploiement de production : aucun compte, partenaire ni identifiant de "
            "démonstration (les foyers fictifs restent dans le seul magasin du bac à sable).",
        ),
    ] = False,
    data_dir: CommandDataDir = None,
) -> None:
    """Initialiser le répertoire de données : bases (migrations), clés, AC locale, bac à sable,
    et, sauf avec --production, le partenaire et l'instructeur de démonstration.

    Idempotent : une seconde exécution ne change rien.
    """
    use_data_dir(data_dir)
    _initialise(households, demo=not production)


def _initialise(households: int, *, demo: bool = True) -> tuple[object, Path]:
    from guichet.demo import initialise
    from guichet.runtime import open_runtime
    from guichet.startup import describe_url

    started = time.monotonic()
    runtime = open_runtime()
    with console.status("Initialisation du répertoire de données…"):
        report = initialise(runtime, households=households, demo=demo)
        # The production records' own database, migrated like the main one (issue 12).
        moved = _production_records_apart(runtime)
    if moved:
        console.print(
            "Données de production déplacées dans leur base "
            f"({describe_url(runtime.settings.resolved_production_records_url)}) : "
            + ", ".join(f"{name} {n}" for name, n in sorted(moved.items()))
            + "."
        )
    if report.seeded_households:
        console.print(f"Bac à sable : {report.seeded_households} foyers fictifs générés.")
    if report.demo_created:
        console.print(f"Partenaire de démonstration créé : {report.credentials_file}")
    if not demo:
        console.print("Production : aucun compte ni partenaire de démonstration.")
    console.print(
        f"Prêt en {time.monotonic() - started:.1f} s — {runtime.settings.data_dir.resolve()}"
    )
    return runtime, report.credentials_file


def _production_records_apart(runtime: Runtime) -> dict[str, int]:
    """Open (and migrate) the production records' database; rows a data directory made
    before it existed left in the main database are moved there."""
    from guichet.records.stores import count_rows, move_store

    production = runtime.records("production")
    if production is runtime.session_factory or not count_rows(
        runtime.session_factory, "production"
    ):
        return {}
    return move_store(runtime.session_factory, production, "production")


@app.command()
def run(
    host: Annotated[
        str | None, typer.Option(help="Adresse d'écoute (par défaut 127.0.0.1).")
    ] = None,
    portal_port: Annotated[
        int | None, typer.Option(help="Port du portail, HTTP (par défaut 8000).")
    ] = None,
    sandbox_port: Annotated[
        int | None, typer.Option(help="Port de la passerelle bac à sable, HTTPS (par défaut 8443).")
    ] = None,
    production_port: Annotated[
        int | None,
        typer.Option(help="Port de la passerelle de production, HTTPS (par défaut 9443)."),
    ] = None,
    federation_port: Annotated[
        int | None,
        typer.Option(help="Port de la fédération d'identité du bac à sable (par défaut 8600)."),
    ] = None,
    households: Annotated[
        int,
        typer.Option(
            min=1, max=1_000_000, help="Foyers fictifs du bac à sable au premier démarrage."
        ),
    ] = 10_000,
    data_dir: CommandDataDir = None,
) -> None:
    """Lancer tout le produit sur le socle embarqué : portail, passerelles, fédération.

    Le premier démarrage initialise le répertoire de données ; les suivants le réutilisent
    tel quel. Les tâches planifiées (guichet operations tick) tournent dans ce processus
    toutes les GUICHET_SCHEDULER_INTERVAL secondes. S'arrête proprement sur Ctrl-C ou SIGTERM.
    """
    use_data_dir(data_dir)
    settings = with_overrides(
        data_dir=get_settings().data_dir,
        host=host,
        portal_port=portal_port,
        sandbox_port=sandbox_port,
        production_port=production_port,
        federation_port=federation_port,
        # One process serves every origin: the quota is its own, not a share of workers'
        # (GUICHET_WORKERS is for `guichet serve gateway`).
        workers=1,
        worker_slot=0,
    )
    use_settings(settings)
    _refuse_exposed_outbox(settings)
    from guichet.preflight import check_serving

    check_serving(settings, "embedded")
    from guichet.habilitation.models import Environment
    from guichet.platform import Listener, Platform, TlsFiles, bind, run_loop, serve
    from guichet.runtime import Runtime

    runtime, credentials_file = _initialise(households)
    assert isinstance(runtime, Runtime)
    pki_dir = settings.data_dir / "pki"
    tls = TlsFiles(
        server_cert=settings.server_cert_file or pki_dir / "server.crt",
        server_key=settings.server_key_file or pki_dir / "server.key",
        client_cas=[pki_dir / "ca.crt"],
    )
    try:
        socks = {
            "portal": bind(settings.host, settings.portal_port),
            "sandbox": bind(settings.host, settings.sandbox_port),
            "production": bind(settings.host, settings.production_port),
            "federation": bind(settings.host, settings.federation_port),
        }
    except OSError as exc:
        raise fail(f"impossible d'écouter sur {settings.host} : {exc.strerror}.") from None
    # One process serves everything here, so it is the one that runs the scheduled operations.
    platform = Platform(runtime, tls, scheduler=True)
    context = platform.ssl_context()
    listeners = [
        Listener("portal", platform.portal_app(), socks["portal"], None),
        Listener("sandbox", platform.gateway_app(Environment.SANDBOX), socks["sandbox"], context),
        Listener(
            "production", platform.gateway_app(Environment.PRODUCTION), socks["production"], context
        ),
        Listener("federation", platform.federation_app(), socks["federation"], None),
    ]
    _print_banner(settings.portal_port, credentials_file)
    run_loop(serve(platform, listeners))
    console.print("Arrêté proprement.")


def _refuse_exposed_outbox(settings: Settings) -> None:
    """The web outbox holds sign-in links: never serve it beyond loopback (issue 11)."""
    from guichet.portal.origin import outbox_exposure

    if refusal := outbox_exposure(settings):
        raise fail(refusal)


def _print_banner(portal_port: int, credentials_file: Path) -> None:
    from guichet.accounts.seed import INSTRUCTOR_EMAIL
    from guichet.demo import demo_curl

    settings = get_settings()
    creds = json.loads(credentials_file.read_text())
    year = time.gmtime().tm_year - 1
    console.print()
    console.print(f"[bold]Portail[/]            http://{settings.host}:{portal_port}")
    console.print(f"[bold]Bac à sable[/]        {settings.public_url('sandbox')}")
    console.print(f"[bold]Production[/]         {settings.public_url('production')}")
    console.print(
        f"[bold]Fédération (bac à sable)[/] http://{settings.host}:{settings.federation_port}"
    )
    console.print(f"[bold]Identifiants démo[/]  {credentials_file.parent}")
    instructor = credentials_file.parent / "instructor.txt"
    if instructor.exists():
        console.print(
            f"[bold]Instructeur[/]        {INSTRUCTOR_EMAIL} — mot de passe et second facteur "
            f"(TOTP) dans {instructor}"
        )
    console.print("\nEssayez (bac à sable, persona 3999999930262) :\n")
    console.print(
        demo_curl(credentials_file, creds, "3999999930262", year),
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    console.print("\nCtrl-C pour arrêter.")


UnixSocket = Annotated[
    Path | None,
    typer.Option(
        "--socket",
        dir_okay=False,
        help="Écouter sur ce socket Unix (mode 0660, groupe GUICHET_PROXY_SOCKET_GROUP) : "
        "le canal du mandataire, seul à pouvoir transmettre certificat et adresse du client.",
    ),
]


def _listen_on(port: int | None, unix_socket: Path | None) -> int:
    """Exactly one of ``--port`` and ``--socket``; the port (0 with a socket)."""
    if (port is None) == (unix_socket is None):
        raise fail("indiquez --port ou --socket (l'un des deux).")
    return port or 0


@serve_app.command("gateway")
def serve_gateway(
    environment: Annotated[str, typer.Option(help="sandbox ou production.")],
    port: Annotated[int | None, typer.Option(help="Port d'écoute (TCP).")] = None,
    host: Annotated[str | None, typer.Option(help="Adresse d'écoute.")] = None,
    unix_socket: UnixSocket = None,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Nombre de processus (SO_REUSEPORT).")
    ] = 1,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Port (sur 127.0.0.1) des métriques Prometheus de tous les processus.",
        ),
    ] = None,
    tls: Annotated[
        bool, typer.Option(help="Terminer TLS ici (--no-tls derrière un mandataire TLS).")
    ] = True,
    data_dir: CommandDataDir = None,
) -> None:
    """Servir une passerelle seule, p. ex. plusieurs processus derrière nginx, quotas dans Redis.

    Derrière nginx, --socket : le certificat du client (Client-Cert) et son adresse
    (X-Forwarded-For) ne sont crus que sur ce socket, jamais en TCP.
    """
    from guichet.workers import serve_origin

    use_data_dir(data_dir)
    settings = get_settings()
    if environment not in ("sandbox", "production"):
        raise fail("--environment vaut sandbox ou production.")
    port = _listen_on(port, unix_socket)
    tls = tls and unix_socket is None  # the proxy terminates TLS in front of its socket
    public = (
        settings.sandbox_public_url if environment == "sandbox" else settings.production_public_url
    )
    if public is None and not tls:
        raise fail(
            f"derrière un mandataire TLS, indiquez l'origine publique de la passerelle "
            f"(GUICHET_{environment.upper()}_PUBLIC_URL) : "
            "elle est l'émetteur et l'audience des jetons."
        )
    if public is None:
        # Serving TLS here: the public origin is this address and port.
        settings = with_overrides(
            data_dir=settings.data_dir, host=host or settings.host, **{f"{environment}_port": port}
        )
    from guichet.preflight import check_serving

    check_serving(settings, environment, tls=tls)
    serve_origin(
        settings, environment, host or settings.host, port, workers, tls, unix_socket, metrics_port
    )


@serve_app.command("portal")
def serve_portal(
    port: Annotated[int | None, typer.Option(help="Port d'écoute (TCP).")] = None,
    host: Annotated[str | None, typer.Option(help="Adresse d'écoute.")] = None,
    unix_socket: UnixSocket = None,
    data_dir: CommandDataDir = None,
) -> None:
    """Servir le portail seul ; les tâches planifiées tournent dans ce processus (un seul)."""
    from guichet.workers import serve_origin

    use_data_dir(data_dir)
    settings = get_settings()
    port = _listen_on(port, unix_socket)
    # The portal's own address is the one it listens on (its default public origin, the
    # outbox's exposure).
    update: dict[str, object] = {"host": host or settings.host}
    if port:
        update["portal_port"] = port
    settings = settings.model_copy(update=update)
    _refuse_exposed_outbox(settings)
    from guichet.preflight import check_serving

    check_serving(settings, "portal")
    serve_origin(settings, "portal", settings.host, port, 1, False, unix_socket)


@serve_app.command("federation")
def serve_federation(
    port: Annotated[int | None, typer.Option(help="Port d'écoute (TCP).")] = None,
    host: Annotated[str | None, typer.Option(help="Adresse d'écoute.")] = None,
    unix_socket: UnixSocket = None,
    data_dir: CommandDataDir = None,
) -> None:
    """Servir seule la fédération d'identité du bac à sable (« qui a lu mes données »,
    les jetons FranceConnect du bac à sable), hors de guichet run.

    Derrière un mandataire, GUICHET_FEDERATION_PUBLIC_URL est son origine publique
    (l'émetteur), et GUICHET_FEDERATION_ISSUER la même pour les passerelles.
    """
    from guichet.workers import serve_origin

    use_data_dir(data_dir)
    settings = get_settings()
    port = _listen_on(port, unix_socket)
    update: dict[str, object] = {"host": host or settings.host}
    if port:
        update["federation_port"] = port
    settings = settings.model_copy(update=update)
    from guichet.preflight import check_serving

    check_serving(settings, "federation", tls=False)
    serve_origin(settings, "federation", settings.host, port, 1, False, unix_socket)


# ---------------------------------------------------------------- habilitations


@habilitation_app.command("list")
def habilitation_list(
    environment: Annotated[
        str | None, typer.Option(help="Seulement cet environnement (sandbox ou production).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Sortie JSON.")] = False,
) -> None:
    """Afficher les habilitations : identifiant, statut, API et quotas."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from guichet.habilitation.models import Habilitation
    from guichet.runtime import open_runtime

    runtime = open_runtime()
    with runtime.session_factory() as session:
        query = (
            select(Habilitation)
            .options(selectinload(Habilitation.organisation))
            .order_by(Habilitation.created_at)
        )
        habs = [h for h in session.scalars(query) if environment in (None, h.environment.value)]
        rows: list[dict[str, Any]] = [
            {
                "id": str(h.id),
                "organisation": h.organisation.name,
                "siret": h.organisation.siret,
                "environment": h.environment.value,
                "status": h.status.value,
                "demarche": h.demarche,
                "apis": h.apis,
                "quotas": h.quotas,
                "ip_ranges": h.ip_ranges,
            }
            for h in habs
        ]
    if as_json:
        out.print_json(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        console.print("Aucune habilitation.")
        return
    table = Table(title="Habilitations")
    for col in ("id", "organisation", "environnement", "statut", "API", "quotas / min"):
        table.add_column(col, overflow="fold")
    for r in rows:
        quotas = ", ".join(f"{k} {v}" for k, v in r["quotas"].items())
        table.add_row(
            r["id"], r["organisation"], r["environment"], r["status"], ", ".join(r["apis"]), quotas
        )
    out.print(table)


def _transition(ident: str, action: str, reason: str, actor: str) -> None:
    """Through the same services as the portal: the contacts are notified, an immediate
    termination ends the validity, an expired attestation is not resumed by hand."""
    from guichet.application import management, permissions
    from guichet.db import transaction
    from guichet.errors import GuichetError
    from guichet.habilitation.service import HabilitationError, find_habilitation
    from guichet.mail import build_mailer
    from guichet.runtime import open_runtime

    services = {
        "suspend": management.suspend_habilitation,
        "resume": management.resume_habilitation,
        "revoke": management.terminate_for_security,
    }
    runtime = open_runtime()
    mailer = build_mailer(runtime.settings, runtime.clock)
    try:
        with transaction(runtime.session_factory) as session:
            hab = find_habilitation(session, ident)
            services[action](
                session,
                hab,
                permissions.ConsoleActor(actor),
                reason,
                now=runtime.clock.now(),
                mailer=mailer,
            )
            hab_id, status = hab.id, hab.status.value
    except (HabilitationError, GuichetError) as exc:
        raise fail(str(exc)) from None
    # Workers poll the policy generation; waiting one interval means that when this command
    # returns, every worker already applies the change to the very next call.
    time.sleep(runtime.settings.cache_poll_interval * 2)
    console.print(f"Habilitation {hab_id} : [bold]{status}[/] ({reason}).")


Reason = Annotated[
    str, typer.Option("--reason", help="Motif (consigné dans l'historique de l'habilitation).")
]
Actor = Annotated[str, typer.Option("--actor", help="Qui agit (consigné).")]


HabilitationId = Annotated[
    str,
    typer.Argument(help="Identifiant de l'habilitation (ou ses 8 premiers caractères au moins)."),
]


@habilitation_app.command("suspend")
def habilitation_suspend(ident: HabilitationId, reason: Reason, actor: Actor = "operator") -> None:
    """Suspendre : tout appel est refusé dès le suivant, jetons déjà émis compris."""
    _transition(ident, "suspend", reason, actor)


@habilitation_app.command("resume")
def habilitation_resume(ident: HabilitationId, reason: Reason, actor: Actor = "operator") -> None:
    """Rétablir une habilitation suspendue."""
    _transition(ident, "resume", reason, actor)


@habilitation_app.command("revoke")
def habilitation_revoke(ident: HabilitationId, reason: Reason, actor: Actor = "operator") -> None:
    """Résilier immédiatement (sécurité) ; définitif."""
    _transition(ident, "revoke", reason, actor)


@habilitation_app.command("rotate-secret")
def habilitation_rotate_secret(ident: HabilitationId, actor: Actor = "operator") -> None:
    """Renouveler le secret du client OAuth : l'ancien cesse de fonctionner dès la commande
    terminée ; le nouveau est affiché ici une seule fois (sortie standard)."""
    from guichet.application import management, permissions
    from guichet.db import transaction
    from guichet.errors import GuichetError
    from guichet.habilitation.service import HabilitationError, find_habilitation
    from guichet.mail import build_mailer
    from guichet.runtime import open_runtime

    runtime = open_runtime()
    try:
        with transaction(runtime.session_factory) as session:
            hab = find_habilitation(session, ident)
            rotation = management.rotate_client_secret(
                session,
                hab,
                permissions.ConsoleActor(actor),
                now=runtime.clock.now(),
                master=runtime.master,
                mailer=build_mailer(runtime.settings, runtime.clock),
            )
            hab_id = hab.id
    except (HabilitationError, GuichetError) as exc:
        raise fail(str(exc)) from None
    assert rotation.secret is not None
    # As for a suspension: when the command returns, no worker accepts the old secret.
    time.sleep(runtime.settings.cache_poll_interval * 2)
    console.print(
        f"Habilitation {hab_id} : secret renouvelé pour [bold]{rotation.client_id}[/]. "
        "Il n'est affiché qu'une fois ; l'ancien ne fonctionne plus."
    )
    out.print(rotation.secret, markup=False, highlight=False)


def _mount_domain_commands() -> None:
    from guichet.commands.accounts import app as user_app
    from guichet.commands.backup import backup_command, restore_command
    from guichet.commands.federation import app as federation_app
    from guichet.commands.journal import app as journal_app
    from guichet.commands.operations import app as operations_app
    from guichet.commands.records import app as data_app
    from guichet.commands.sandbox import app as sandbox_app

    app.add_typer(
        journal_app, name="journal", help="Vérifier, exporter et purger le journal des échanges."
    )
    app.add_typer(sandbox_app, name="sandbox", help="La population fictive du bac à sable.")
    app.add_typer(data_app, name="data", help="Charger les données du fournisseur dans un magasin.")
    app.add_typer(
        federation_app, name="federation", help="Les clients de la fédération du bac à sable."
    )
    app.add_typer(user_app, name="user", help="Les comptes du portail.")
    app.command("backup")(backup_command)
    app.command("restore")(restore_command)
    app.add_typer(
        operations_app,
        name="operations",
        help="Tâches planifiées : préavis, homologations, purges (guichet operations tick).",
    )


_mount_domain_commands()


def main() -> None:
    from rich.markup import escape

    from guichet.startup import StartupError

    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except StartupError as exc:
        # A setting or a service at fault (issue 12): said plainly, never a traceback.
        console.print(f"[bold red]Erreur :[/] {escape(str(exc))}", highlight=False)
        sys.exit(2)

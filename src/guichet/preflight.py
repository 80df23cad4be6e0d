"""Checks before serving (issue 12): ``guichet run`` and ``guichet serve …`` call
``check_serving`` once, before they listen and before they start their workers; what is at
fault is said plainly (``guichet.startup.StartupError``) and the command exits non-zero."""

from __future__ import annotations

from sqlalchemy import make_url
from sqlalchemy.orm import Session, sessionmaker

from guichet.db.migrate import is_current
from guichet.demo import demo_remnants
from guichet.records.stores import count_rows
from guichet.runtime import Runtime, open_runtime
from guichet.settings import Settings
from guichet.startup import (
    StartupError,
    check_redis,
    check_server_certificate,
    check_trust_store,
    local_ca_is_trusted,
    problems_message,
)


def check_production(
    settings: Settings, session_factory: sessionmaker[Session], origin: str
) -> None:
    """Refuse to serve production (``origin``: ``production`` or ``portal``) with the demo
    in the database, the local CA as trust store, or the production records in the main
    database."""
    problems: list[str] = []
    with session_factory() as session:
        problems += demo_remnants(session)
    if origin == "production":
        if (reason := local_ca_is_trusted(settings)) is not None:
            problems.append(reason)
        if settings.resolved_production_records_url == settings.resolved_database_url:
            problems.append(
                "GUICHET_PRODUCTION_RECORDS_URL désigne la base principale : la passerelle "
                "du bac à sable et le portail, qui y ont accès, pourraient lire les données "
                "de production. Lui donner une base à elle."
            )
    if problems:
        raise StartupError(problems_message("Refus de servir la production", problems))


def check_serving(settings: Settings, origin: str, *, tls: bool = True) -> None:
    """Everything a served origin (``sandbox``, ``production``, ``portal``, ``federation``,
    or ``embedded`` for ``guichet run``) needs, checked once before it listens (and before
    it starts its workers): the secret, the database (migrated), Redis, the certificates and
    trust stores it uses, and for production, what ``check_production`` refuses."""
    embedded = origin == "embedded"
    if settings.production_records_url and origin in ("sandbox", "portal", "federation"):
        raise StartupError(
            "GUICHET_PRODUCTION_RECORDS_URL est donné à un processus qui ne sert pas la "
            f"production ({origin}) : ne le donner qu'à la passerelle de production et aux "
            "imports (guichet data import), pour que ce processus ne puisse pas lire les "
            "données de production."
        )
    runtime = open_runtime(settings, migrate=embedded)
    try:
        if not embedded and not is_current(runtime.engine):
            raise StartupError("La base n'est pas à jour : lancez `guichet init` d'abord.")
        if not embedded:
            _refuse_production_rows_left(runtime)
        if settings.redis_url:
            check_redis(settings.redis_url)
        if settings.client_ca_file is not None and origin in ("sandbox", "production", "embedded"):
            check_trust_store(settings.client_ca_file, "GUICHET_CLIENT_CA_FILE")
        elif tls and origin in ("sandbox", "production"):
            # Without a trust store of its own, a gateway serving TLS trusts the local CA.
            check_trust_store(settings.data_dir / "pki" / "ca.crt", "AC locale (DATA_DIR/pki)")
        if tls and origin in ("sandbox", "production"):
            pki = settings.data_dir / "pki"
            check_server_certificate(
                settings.server_cert_file or pki / "server.crt",
                settings.server_key_file or pki / "server.key",
            )
        elif embedded and (settings.server_cert_file or settings.server_key_file):
            if not (settings.server_cert_file and settings.server_key_file):
                raise StartupError(
                    "GUICHET_SERVER_CERT_FILE et GUICHET_SERVER_KEY_FILE vont ensemble : "
                    "définir les deux, ou aucun (certificat de l'AC locale)."
                )
            check_server_certificate(settings.server_cert_file, settings.server_key_file)
        if origin in ("production", "portal"):
            check_production(settings, runtime.session_factory, origin)
        if origin == "production":
            runtime.records("production")  # reachable and up to date
    finally:
        runtime.close()


def _refuse_production_rows_left(runtime: Runtime) -> None:
    """A data directory made before the production records had their own database still
    holds them in the main one, which every process reads: ``guichet init`` moves them."""
    if make_url(runtime.settings.resolved_production_records_url) == runtime.engine.url:
        return  # one database for both: refused by check_production (production gateway)
    left = count_rows(runtime.session_factory, "production")
    if left:
        tables = ", ".join(f"{name} ({n})" for name, n in sorted(left.items()))
        raise StartupError(
            "La base principale contient encore des données de production : "
            f"{tables}. Lancer `guichet init`, qui les déplace dans leur base "
            "(GUICHET_PRODUCTION_RECORDS_URL), avant de servir."
        )

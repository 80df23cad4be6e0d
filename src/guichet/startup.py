"""Start-up checks (issue 12): what a command or a server needs is there and valid before it
starts — a clear message and a non-zero exit (``guichet.cli.main``), never a server that
answers 500 or an export that silently finds nothing.

- the master secret: a value (``GUICHET_SECRET_KEY``) or a file (``GUICHET_SECRET_KEY_FILE``),
  never both, never a path given as a value, at least 32 bytes, and the one this database was
  initialised with (it decrypts the stored signing keys);
- the databases reachable (the main one, the production records' one), Redis reachable;
- the trust stores and the server certificate readable and parseable;
- in production (``guichet serve gateway --environment production``, ``guichet serve
  portal``): no demo account or partner, a trust store of the operator's (not the local CA
  whose key sits in the data directory), the production records apart from the main
  database.
"""

from __future__ import annotations

import ssl
import stat
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives import hashes
from sqlalchemy import Engine, inspect, make_url, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from guichet.secrets import MasterSecret
from guichet.settings import Settings

MIN_SECRET_BYTES = 32
# How a path begins (a generated secret — base64url, hexadecimal — never does).
_PATH_STARTS = ("/", "./", "../", "~/")


class StartupError(Exception):
    """A setting or a service that keeps guichet from starting; ``str()`` is the operator's
    message (French), naming the setting at fault."""


def _looks_like_path(value: str) -> bool:
    if value.startswith(_PATH_STARTS):
        return True
    return len(value) < 4096 and "/" in value and Path(value).expanduser().exists()


def resolve_secret(settings: Settings) -> str | None:
    """The configured master secret: ``GUICHET_SECRET_KEY``'s value or
    ``GUICHET_SECRET_KEY_FILE``'s content; None when neither is set (``DATA_DIR/secret.key``)."""
    value, path = settings.secret_key, settings.secret_key_file
    if value and path:
        raise StartupError(
            "GUICHET_SECRET_KEY et GUICHET_SECRET_KEY_FILE sont définis tous les deux : "
            "n'en garder qu'un (le secret lui-même, ou le fichier qui le contient)."
        )
    if path is not None:
        return _secret_from_file(path)
    if not value:
        return None
    if _looks_like_path(value):
        raise StartupError(
            f"GUICHET_SECRET_KEY ressemble à un chemin de fichier ({value[:60]}) : cette "
            "variable contient le secret lui-même. Pour lire le secret dans un fichier, "
            "utiliser GUICHET_SECRET_KEY_FILE."
        )
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise StartupError(
            f"GUICHET_SECRET_KEY est trop court : {MIN_SECRET_BYTES} octets au moins "
            "(p. ex. `python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`)."
        )
    return value


def _secret_from_file(path: Path) -> str:
    where = f"GUICHET_SECRET_KEY_FILE ({path})"
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise StartupError(f"{where} : fichier introuvable.") from None
    except PermissionError:
        raise StartupError(f"{where} : fichier illisible pour ce compte (droits).") from None
    except IsADirectoryError:
        raise StartupError(f"{where} : c'est un répertoire, pas un fichier.") from None
    except UnicodeDecodeError:
        raise StartupError(f"{where} : le fichier n'est pas du texte UTF-8.") from None
    except OSError as exc:
        raise StartupError(f"{where} : lecture impossible ({exc.strerror}).") from None
    if stat.S_IMODE(mode) & 0o007:
        raise StartupError(
            f"{where} : le fichier est lisible par tous les comptes de la machine ; "
            "le restreindre (chmod 600 ou 640)."
        )
    if len(text.encode()) < MIN_SECRET_BYTES:
        raise StartupError(
            f"{where} : le secret est vide ou trop court ({MIN_SECRET_BYTES} octets au moins)."
        )
    return text


def load_master(settings: Settings) -> MasterSecret:
    """The master secret in force, or a ``StartupError`` saying what is wrong with it."""
    configured = resolve_secret(settings)
    try:
        return MasterSecret.load(settings.data_dir, configured)
    except ValueError:
        raise StartupError(
            f"{settings.data_dir / 'secret.key'} : le secret est vide ou trop court "
            f"({MIN_SECRET_BYTES} octets au moins)."
        ) from None
    except OSError as exc:
        raise StartupError(
            f"{settings.data_dir / 'secret.key'} : lecture impossible ({exc.strerror})."
        ) from None


def describe_url(url: str) -> str:
    """A database URL as a message may show it: no password."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split(":", 1)[0] + ":…"


def check_database(engine: Engine, setting: str) -> None:
    """The database answers (a connection and a trivial query)."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]
        raise StartupError(
            f"{setting} : base de données injoignable ({describe_url(str(engine.url))}) : {reason}"
        ) from None


def check_secret_matches(session_factory: sessionmaker[Session], master: MasterSecret) -> None:
    """The master secret decrypts the signing keys this database holds: a different secret
    would make ``/token`` answer 500 and the journal's pseudonyms match nobody."""
    from guichet.oauth.models import SigningKey

    engine = session_factory.kw["bind"]
    if not inspect(engine).has_table(SigningKey.__tablename__):
        return
    with session_factory() as session:
        stored = session.scalars(select(SigningKey.private_key_encrypted).limit(1)).first()
    if stored is None:
        return
    try:
        master.decrypt(stored)
    except InvalidToken:
        raise StartupError(
            "Le secret maître (GUICHET_SECRET_KEY, GUICHET_SECRET_KEY_FILE ou "
            "DATA_DIR/secret.key) n'est pas celui avec lequel cette base a été initialisée : "
            "il ne déchiffre pas ses clés de signature. Avec lui, /token échouerait et le "
            "journal ne retrouverait aucune personne par son SPI. Rétablir le secret d'origine."
        ) from None


def check_trust_store(path: Path, setting: str) -> list[x509.Certificate]:
    """A PEM file of one certificate at least."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise StartupError(f"{setting} ({path}) : fichier introuvable.") from None
    except OSError as exc:
        raise StartupError(f"{setting} ({path}) : lecture impossible ({exc.strerror}).") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise StartupError(
            f"{setting} ({path}) : aucun certificat PEM lisible (« -----BEGIN CERTIFICATE----- »)."
        ) from None
    return certificates


def check_server_certificate(cert: Path, key: Path) -> None:
    """The server certificate and its key load together (what TLS will do)."""
    for path, setting in ((cert, "GUICHET_SERVER_CERT_FILE"), (key, "GUICHET_SERVER_KEY_FILE")):
        if not path.is_file():
            raise StartupError(f"{setting} ({path}) : fichier introuvable.")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise StartupError(
            f"GUICHET_SERVER_CERT_FILE / GUICHET_SERVER_KEY_FILE ({cert}, {key}) : le certificat "
            f"et sa clé ne se chargent pas ensemble ({exc})."
        ) from None


def check_redis(url: str, timeout: float = 3.0) -> None:
    """Redis answers PING (the shared quota counters)."""
    import redis
    from redis.exceptions import RedisError

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        try:
            client.ping()
        finally:
            client.close()
    except (RedisError, ValueError, OSError) as exc:
        raise StartupError(
            f"GUICHET_REDIS_URL : Redis injoignable ({_redis_location(url)}) : {exc}"
        ) from None


def _redis_location(url: str) -> str:
    """scheme://host:port of a Redis URL, without its password."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or ''}:{parts.port or 6379}"
    except ValueError:
        return "URL illisible"


# --------------------------------------------------------------------------- production


def local_ca_is_trusted(settings: Settings) -> str | None:
    """Why the production trust store is the local CA (whose key is in the data directory),
    or None when it is the operator's own."""
    local = settings.data_dir / "pki" / "ca.crt"
    if settings.client_ca_file is None:
        return (
            "GUICHET_CLIENT_CA_FILE n'est pas défini : la passerelle de production ferait "
            f"confiance à l'AC locale ({local}), dont la clé est dans le répertoire de données. "
            "Indiquer le magasin de confiance des certificats des partenaires."
        )
    try:
        same = local.is_file() and (
            settings.client_ca_file.resolve() == local.resolve()
            or {c.fingerprint(hashes.SHA256()) for c in check_trust_store(local, "AC locale")}
            & {
                c.fingerprint(hashes.SHA256())
                for c in check_trust_store(settings.client_ca_file, "GUICHET_CLIENT_CA_FILE")
            }
        )
    except StartupError:
        return None  # the trust store itself is checked (and reported) elsewhere
    if same:
        return (
            f"GUICHET_CLIENT_CA_FILE ({settings.client_ca_file}) contient l'AC locale de "
            "démonstration, dont la clé est dans le répertoire de données : n'importe qui "
            "lisant ce répertoire émettrait des certificats de partenaire."
        )
    return None


def problems_message(title: str, problems: Sequence[str]) -> str:
    return f"{title} :\n" + "\n".join(f"  - {p}" for p in problems)

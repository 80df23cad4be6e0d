"""Settings checked at start-up (issue 12 §4): a wrong secret, an unreachable database or
Redis, an unreadable trust store, the demo or the local CA in production — each a clear
message and a non-zero exit, never a server that answers 500 or an export that finds
nothing."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import guichet.cli as cli
from guichet.pki import ensure_local_pki
from guichet.preflight import check_serving
from guichet.runtime import open_runtime
from guichet.settings import Settings, use_settings
from guichet.startup import (
    StartupError,
    check_redis,
    check_trust_store,
    resolve_secret,
)
from tests.conftest import BACKENDS
from tests.support.postgres import PostgresServer, free_port

SECRET = "s" * 48


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, no schema yet: what a first ``guichet init`` finds."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'main.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"startup_{uuid.uuid4().hex[:10]}")


@pytest.fixture
def settings_of(tmp_path: Path, fresh_url: str) -> Iterator[dict[str, object]]:
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": fresh_url,
        "production_records_url": f"sqlite:///{tmp_path / 'production-records.db'}",
        "redis_url": None,
    }
    yield values
    use_settings(None)


# --------------------------------------------------------------------- the secret


def test_a_path_given_as_the_secret_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a-directory-long-enough-to-pass-for-a-key" / "secret.key"
    with pytest.raises(StartupError) as caught:
        resolve_secret(Settings(data_dir=tmp_path, secret_key=str(path)))
    assert "GUICHET_SECRET_KEY_FILE" in str(caught.value)
    assert "chemin" in str(caught.value)


def test_an_existing_relative_path_is_refused_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "guichet-secret-key-of-the-production.txt").write_text(SECRET)
    with pytest.raises(StartupError, match="ressemble à un chemin"):
        resolve_secret(
            Settings(data_dir=tmp_path, secret_key="etc/guichet-secret-key-of-the-production.txt")
        )


def test_the_secret_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    assert resolve_secret(Settings(data_dir=tmp_path, secret_key_file=path)) == SECRET
    assert resolve_secret(Settings(data_dir=tmp_path, secret_key=SECRET)) == SECRET
    assert resolve_secret(Settings(data_dir=tmp_path)) is None  # DATA_DIR/secret.key


@pytest.mark.parametrize(
    ("content", "mode", "fragment"),
    [
        (None, 0o600, "introuvable"),
        ("", 0o600, "vide ou trop court"),
        ("court", 0o600, "vide ou trop court"),
        (SECRET, 0o644, "lisible par tous"),
    ],
)
def test_a_bad_secret_file_is_refused(
    tmp_path: Path, content: str | None, mode: int, fragment: str
) -> None:
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content)
        path.chmod(mode)
    with pytest.raises(StartupError, match=fragment):
        resolve_secret(Settings(data_dir=tmp_path, secret_key_file=path))


def test_value_and_file_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET)
    path.chmod(0o600)
    with pytest.raises(StartupError, match="tous les deux"):
        resolve_secret(Settings(data_dir=tmp_path, secret_key=SECRET, secret_key_file=path))


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="trop court"):
        resolve_secret(Settings(data_dir=tmp_path, secret_key="x" * 31))


def test_another_secret_than_the_databases_is_refused(settings_of: dict[str, object]) -> None:
    """The journal's pseudonyms and the signing keys follow the secret: another one would
    make /token answer 500 and an export by SPI find nobody."""
    use_settings(Settings.model_validate({**settings_of, "secret_key": SECRET}))
    result = CliRunner().invoke(cli.app, ["init", "--production", "--households", "3"])
    assert result.exit_code == 0, result.output
    other = Settings.model_validate({**settings_of, "secret_key": "o" * 48})
    with pytest.raises(StartupError, match="pas celui avec lequel cette base"):
        open_runtime(other)
    open_runtime(Settings.model_validate({**settings_of, "secret_key": SECRET})).close()


def test_the_command_line_says_it_and_exits_non_zero(tmp_path: Path) -> None:
    """Through ``python -m guichet`` (``guichet.cli.main``): a message, no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    env |= {
        "GUICHET_DATA_DIR": str(tmp_path / "data"),
        "GUICHET_SECRET_KEY": "/etc/guichet/credentials/secret-key-of-the-gateway",
    }
    for command, code in (
        (["user", "list"], 2),
        # The journal's export names it too, with its own exit code: never "0 records".
        (["journal", "export", "--subject-spi", "3999999930262"], 1),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "guichet", *command],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == code, result.stdout + result.stderr
        assert "GUICHET_SECRET_KEY_FILE" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout


# --------------------------------------------------------------------- services, stores


def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://guichet:hunter2-secret@127.0.0.1:{free_port()}/guichet"
    with pytest.raises(StartupError) as caught:
        open_runtime(Settings(data_dir=tmp_path, database_url=url, secret_key=SECRET))
    message = str(caught.value)
    assert "GUICHET_DATABASE_URL" in message
    assert "injoignable" in message
    assert "hunter2" not in message


def test_an_unreachable_redis_is_refused() -> None:
    with pytest.raises(StartupError, match="GUICHET_REDIS_URL : Redis injoignable"):
        check_redis(f"redis://:pw@127.0.0.1:{free_port()}/0", timeout=1)


def test_a_trust_store_that_is_no_certificate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ca.pem"
    path.write_text("not a certificate")
    with pytest.raises(StartupError, match="aucun certificat PEM"):
        check_trust_store(path, "GUICHET_CLIENT_CA_FILE")
    with pytest.raises(StartupError, match="introuvable"):
        check_trust_store(tmp_path / "missing.pem", "GUICHET_CLIENT_CA_FILE")


# --------------------------------------------------------------------- production


def test_production_with_the_demo_and_the_local_ca_is_refused(
    settings_of: dict[str, object],
) -> None:
    settings = Settings.model_validate({**settings_of, "secret_key": SECRET})
    use_settings(settings)
    result = CliRunner().invoke(cli.app, ["init", "--households", "3"])  # the embedded demo
    assert result.exit_code == 0, result.output
    with pytest.raises(StartupError) as caught:
        check_serving(settings, "production")
    message = str(caught.value)
    assert "instructeur@guichet.example" in message
    assert "Ville de Démoville" in message
    assert "GUICHET_CLIENT_CA_FILE n'est pas défini" in message
    with pytest.raises(StartupError, match=r"instructeur@guichet\.example"):
        check_serving(_not_production(settings), "portal")
    check_serving(_not_production(settings), "sandbox")  # the sandbox may keep its demo
    # The local CA named as the trust store is refused as well.
    local = Settings.model_validate(
        {**settings_of, "secret_key": SECRET, "client_ca_file": settings.data_dir / "pki/ca.crt"}
    )
    with pytest.raises(StartupError, match="AC locale de démonstration"):
        check_serving(local, "production")


def test_production_initialised_without_demo_serves(
    settings_of: dict[str, object], tmp_path: Path
) -> None:
    """``guichet init --production``: no demo account, partner or credentials; with the
    operator's own trust store, production starts."""
    operator_ca = ensure_local_pki(tmp_path / "operator-pki", _now(), hosts=["127.0.0.1"])
    settings = Settings.model_validate(
        {**settings_of, "secret_key": SECRET, "client_ca_file": operator_ca.ca_cert_file}
    )
    use_settings(settings)
    result = CliRunner().invoke(cli.app, ["init", "--production", "--households", "3"])
    assert result.exit_code == 0, result.output
    assert "aucun compte ni partenaire de démonstration" in result.output
    assert not (settings.data_dir / "demo").exists()
    check_serving(settings, "production")
    check_serving(_not_production(settings), "portal")
    # The processes that do not serve production are not given its records' database.
    for origin in ("portal", "sandbox", "federation"):
        with pytest.raises(StartupError, match="ne le donner qu'à la passerelle de production"):
            check_serving(settings, origin)


def test_production_records_in_the_main_database_are_refused(
    settings_of: dict[str, object], tmp_path: Path
) -> None:
    operator_ca = ensure_local_pki(tmp_path / "operator-pki", _now(), hosts=["127.0.0.1"])
    shared = Settings.model_validate(
        {
            **settings_of,
            "secret_key": SECRET,
            "client_ca_file": operator_ca.ca_cert_file,
            "production_records_url": settings_of["database_url"],
        }
    )
    use_settings(shared)
    result = CliRunner().invoke(cli.app, ["init", "--production", "--households", "3"])
    assert result.exit_code == 0, result.output
    with pytest.raises(StartupError, match="désigne la base principale"):
        check_serving(shared, "production")


def _not_production(settings: Settings) -> Settings:
    """The settings of a process that does not serve production: no records' URL."""
    return settings.model_copy(update={"production_records_url": None})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_serving_production_with_the_demo_exits_before_listening(tmp_path: Path) -> None:
    """``guichet init`` (the embedded default's demo), then ``guichet serve gateway
    --environment production``: refused with the reasons, exit code 2, nothing served."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    env |= {"GUICHET_DATA_DIR": str(tmp_path / "data"), "GUICHET_SECRET_KEY": SECRET}

    def guichet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "guichet", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    assert guichet("init", "--households", "3").returncode == 0
    port = str(free_port())
    served = guichet("serve", "gateway", "--environment", "production", "--port", port)
    assert served.returncode == 2, served.stdout + served.stderr
    assert "Refus de servir la production" in served.stderr
    assert "instructeur@guichet.example" in served.stderr
    assert "GUICHET_CLIENT_CA_FILE" in served.stderr
    assert "Traceback" not in served.stderr
    removed = guichet("user", "remove", "instructeur@guichet.example")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    again = guichet("serve", "gateway", "--environment", "production", "--port", port)
    assert again.returncode == 2
    assert "instructeur@guichet.example" not in again.stderr
    assert "Ville de Démoville" in again.stderr

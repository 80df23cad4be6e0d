"""Issue 11 §1: taking an account over through a forged ``Host`` and the web outbox."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

import guichet.cli as cli
from guichet.mail.outbox import Outbox
from guichet.portal.origin import OutboxExposed
from guichet.settings import use_settings
from tests.security.conftest import LOOPBACK_PEER, REMOTE_PEER, PortalFactory
from tests.unit.portal.conftest import csrf_of, sign_up_data

EMBEDDED = "http://127.0.0.1:8000"
EMAIL = "camille@mairie-exemple.fr"


def verified_account(client: TestClient, outbox: Outbox) -> None:
    answer = client.post(
        "/inscription",
        data={**sign_up_data(email=EMAIL), "csrf_token": csrf_of(client, "/inscription")},
    )
    assert answer.status_code == 303, answer.text
    assert client.get(link_path(outbox, "/verification-email")).status_code == 200


def link_path(outbox: Outbox, path: str) -> str:
    message = outbox.get(outbox.list()[0].id)
    assert message is not None
    found = re.search(rf"https?://[^/\s]+({re.escape(path)}\?token=\S+)", message.text)
    assert found, message.text
    return found.group(1)


def newest_text(outbox: Outbox) -> str:
    message = outbox.get(outbox.list()[0].id)
    assert message is not None
    return message.text


def ask_reset(client: TestClient, host: str | None = None) -> int:
    csrf = csrf_of(client, "/mot-de-passe/oubli")
    headers = {"Host": host} if host else {}
    answer = client.post(
        "/mot-de-passe/oubli", data={"email": EMAIL, "csrf_token": csrf}, headers=headers
    )
    return answer.status_code


def test_a_foreign_host_is_refused_and_sends_no_mail(
    make_portal: PortalFactory, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox")
    with TestClient(make_portal(), base_url=EMBEDDED, follow_redirects=False) as client:
        verified_account(client, outbox)
        before = len(outbox.list())
        for host in ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "a b", "[::1"]:
            assert ask_reset(client, host) == 400, host
            refused = client.get("/connexion", headers={"Host": host})
            assert refused.status_code == 400
            assert "Adresse non reconnue" in refused.text
            assert EMBEDDED in refused.text
        assert len(outbox.list()) == before


def test_reset_links_come_from_the_public_url_not_the_host(
    make_portal: PortalFactory, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox")
    with TestClient(make_portal(), base_url=EMBEDDED, follow_redirects=False) as client:
        verified_account(client, outbox)
        # A loopback alias is accepted in the embedded default, but it is not the origin.
        assert ask_reset(client, "localhost:8000") == 200
    text = newest_text(outbox)
    assert f"{EMBEDDED}/mot-de-passe/nouveau?token=" in text
    assert "localhost" not in text


def test_with_a_public_url_only_its_host_is_answered(
    make_portal: PortalFactory, tmp_path: Path
) -> None:
    public = "https://portail.guichet.example"
    portal = make_portal(portal_public_url=public)
    outbox = Outbox(tmp_path / "outbox")
    with TestClient(portal, base_url=public, follow_redirects=False) as client:
        verified_account(client, outbox)
        assert ask_reset(client, "127.0.0.1:8000") == 400
        assert ask_reset(client, "localhost") == 400
        assert ask_reset(client) == 200
    assert f"{public}/mot-de-passe/nouveau?token=" in newest_text(outbox)


def test_the_outbox_is_read_only_from_this_machine(
    make_portal: PortalFactory, tmp_path: Path
) -> None:
    portal = make_portal()
    outbox = Outbox(tmp_path / "outbox")
    local_client = TestClient(
        portal, base_url=EMBEDDED, client=LOOPBACK_PEER, follow_redirects=False
    )
    with local_client as local:
        verified_account(local, outbox)
        mail_id = outbox.list()[0].id
        assert local.get("/outbox").status_code == 200
        assert local.get(f"/outbox/{mail_id}").status_code == 200
        assert 'href="/outbox"' in local.get("/").text
        # A proxy on this machine relays others: what it forwards is not local.
        relayed = {"X-Forwarded-For": "203.0.113.9"}
        assert local.get("/outbox", headers=relayed).status_code == 404
        assert (
            local.get(f"/outbox/{mail_id}", headers={"Forwarded": "for=1.2.3.4"}).status_code == 404
        )
    with TestClient(portal, base_url=EMBEDDED, client=REMOTE_PEER) as remote:
        listing = remote.get("/outbox")
        assert listing.status_code == 404
        assert "token=" not in listing.text
        message = remote.get(f"/outbox/{mail_id}")
        assert message.status_code == 404
        assert "token=" not in message.text
        assert 'href="/outbox"' not in remote.get("/").text


def test_the_portal_refuses_to_build_with_the_outbox_beyond_loopback(
    make_portal: PortalFactory,
) -> None:
    with pytest.raises(OutboxExposed, match="boîte d'envoi web"):
        make_portal(host="0.0.0.0")
    with pytest.raises(OutboxExposed):
        make_portal(host="192.0.2.10")
    # With SMTP, or without the web outbox, nothing to expose.
    make_portal(host="0.0.0.0", smtp_url="smtp://127.0.0.1:1")
    make_portal(host="0.0.0.0", outbox_web=False)
    make_portal(host="::1")


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    env["GUICHET_DATA_DIR"] = str(tmp_path / "data")
    return env


def test_serving_the_portal_beyond_loopback_with_the_outbox_is_refused_at_start(
    tmp_path: Path,
) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "guichet", "serve", "portal", "--host", "0.0.0.0", "--port", "1"],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "boîte d'envoi web" in started.stderr
    assert "GUICHET_SMTP_URL" in started.stderr


def test_run_beyond_loopback_with_the_outbox_is_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    initialised: list[bool] = []
    monkeypatch.setattr(cli, "_initialise", lambda _households: initialised.append(True))
    for name in ("GUICHET_SMTP_URL", "GUICHET_OUTBOX_WEB"):
        monkeypatch.delenv(name, raising=False)
    try:
        result = CliRunner().invoke(
            cli.app, ["run", "--host", "192.0.2.10", "--data-dir", str(tmp_path)]
        )
    finally:
        use_settings(None)
    assert result.exit_code != 0
    assert "boîte d'envoi web" in result.output
    assert initialised == []

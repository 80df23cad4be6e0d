"""The running product, started as a user starts it (``guichet run``), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from guichet.db import make_engine, make_sessionmaker
from tests.conftest import BACKENDS
from tests.support.postgres import PostgresServer, free_port


@dataclass
class Product:
    data_dir: Path
    env: dict[str, str]
    portal_url: str
    sandbox_url: str
    production_url: str
    db_url: str
    proc: subprocess.Popen[bytes]
    log_file: Path
    federation_url: str = ""
    credentials: dict[str, Any] = field(default_factory=dict)
    _factory: sessionmaker[Session] | None = None

    def guichet(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "guichet", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"guichet {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result

    @property
    def session_factory(self) -> sessionmaker[Session]:
        if self._factory is None:
            self._factory = make_sessionmaker(make_engine(self.db_url))
        return self._factory

    def http(
        self,
        cert: tuple[str, str] | None = None,
        local_address: str | None = None,
        base_url: str | None = None,
    ) -> httpx.Client:
        import ssl

        ctx = ssl.create_default_context(cafile=self.credentials["ca_file"])
        if cert:
            ctx.load_cert_chain(cert[0], cert[1])
        transport = httpx.HTTPTransport(verify=ctx, local_address=local_address)
        return httpx.Client(base_url=base_url or self.sandbox_url, transport=transport, timeout=30)

    def demo_cert(self) -> tuple[str, str]:
        return self.credentials["cert_file"], self.credentials["key_file"]

    def token(
        self,
        client: httpx.Client,
        client_id: str | None = None,
        secret: str | None = None,
        scope: str | None = None,
    ) -> str:
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        r = client.post(
            "/token",
            data=data,
            auth=(
                client_id or self.credentials["client_id"],
                secret or self.credentials["client_secret"],
            ),
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


def api_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Correlation-ID": str(uuid.uuid4())}


def _wait_ready(product: Product, deadline: float) -> None:
    while time.monotonic() < deadline:
        if product.proc.poll() is not None:
            raise RuntimeError("guichet run exited:\n" + product.log_file.read_text())
        creds = product.data_dir / "demo" / "credentials.json"
        if creds.exists():
            try:
                product.credentials = json.loads(creds.read_text())
                with product.http() as c:
                    if c.get("/healthz").status_code == 200:
                        return
            except (httpx.HTTPError, json.JSONDecodeError, OSError):
                pass
        time.sleep(0.3)
    raise RuntimeError("guichet run did not become ready:\n" + product.log_file.read_text())


@pytest.fixture(scope="module", params=BACKENDS)
def product(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Product]:
    data_dir = tmp_path_factory.mktemp("guichet-data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    env["GUICHET_DATA_DIR"] = str(data_dir)
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        db_url = server.create_database(f"product_{uuid.uuid4().hex[:8]}")
        env["GUICHET_DATABASE_URL"] = db_url
    else:
        db_url = f"sqlite:///{data_dir / 'guichet.db'}"
    ports = [free_port() for _ in range(4)]
    log_file = data_dir.parent / f"{data_dir.name}.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "guichet",
                "run",
                "--households",
                "300",
                "--portal-port",
                str(ports[0]),
                "--sandbox-port",
                str(ports[1]),
                "--production-port",
                str(ports[2]),
                "--federation-port",
                str(ports[3]),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    product = Product(
        data_dir=data_dir,
        env=env,
        portal_url=f"http://127.0.0.1:{ports[0]}",
        sandbox_url=f"https://127.0.0.1:{ports[1]}",
        production_url=f"https://127.0.0.1:{ports[2]}",
        federation_url=f"http://127.0.0.1:{ports[3]}",
        db_url=db_url,
        proc=proc,
        log_file=log_file,
    )
    try:
        _wait_ready(product, time.monotonic() + 180)
        yield product
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()

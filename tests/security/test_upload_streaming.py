"""Issue 11 §8: a huge upload was read in full (300 MiB) before the 10 MiB check."""

from __future__ import annotations

import uuid

import pytest
from starlette.applications import Starlette
from starlette.types import Message

from guichet.habilitation.uploads import MAX_BYTES
from tests.security.conftest import PortalFactory

MIB = 1024 * 1024
BOUNDARY = "guichet-attaque"
URLENCODED = "application/x-www-form-urlencoded"


class Attacker:
    """Sends a multipart body of ``total`` bytes, one MiB at a time, and counts what the
    portal pulled before answering."""

    def __init__(self, total: int, *, declare_length: bool, files: bool = True) -> None:
        self.total = total
        self.declare_length = declare_length
        self.files = files
        self.pulled = 0
        self.status: int | None = None
        self.body = b""

    def scope(self, path: str) -> dict[str, object]:
        kind = f"multipart/form-data; boundary={BOUNDARY}" if self.files else URLENCODED
        headers = [(b"host", b"testserver"), (b"content-type", kind.encode())]
        if self.declare_length:
            headers.append((b"content-length", str(self.total).encode()))
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": headers,
            "client": ("203.0.113.7", 50000),
            "server": ("testserver", 80),
        }

    async def receive(self) -> Message:
        if not self.files:
            # Many fields, each under Starlette's 1 MiB per field.
            field = f"&f{self.pulled // MIB}=".encode()
            chunk = field + b"x" * (MIB - len(field))
        elif self.pulled == 0:
            head = (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="document"; '
                f'filename="loi.pdf"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.7\n'
            ).encode()
            chunk = head + b"\0" * (MIB - len(head))
        else:
            chunk = b"\0" * MIB
        self.pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": self.pulled < self.total}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


@pytest.fixture
def portal(make_portal: PortalFactory) -> Starlette:
    return make_portal(portal_public_url="http://testserver")


UPLOAD = f"/demandes/{uuid.uuid4()}/blocs/legal"


@pytest.mark.anyio
@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
async def test_a_300_mib_upload_is_refused_while_it_streams(
    portal: Starlette, declare_length: bool
) -> None:
    attacker = Attacker(300 * MIB, declare_length=declare_length)
    await portal(attacker.scope(UPLOAD), attacker.receive, attacker.send)
    assert attacker.status == 413
    assert "Envoi trop volumineux" in attacker.body.decode()
    # At most the route's allowance (two 10 MiB documents and the fields) and one chunk more.
    assert attacker.pulled <= 2 * MAX_BYTES + 3 * MIB
    if declare_length:
        assert attacker.pulled == 0  # refused on its Content-Length alone


@pytest.mark.anyio
async def test_a_form_without_files_takes_two_mib_at_most(portal: Starlette) -> None:
    attacker = Attacker(50 * MIB, declare_length=False, files=False)
    await portal(attacker.scope("/connexion"), attacker.receive, attacker.send)
    assert attacker.status == 413
    assert attacker.pulled <= 3 * MIB


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

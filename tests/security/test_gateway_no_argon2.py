"""Issue 11 §4: argon2 off the gateways' path. 300 concurrent portal sign-ins (argon2 each)
pushed the sandbox ``/token`` p99 from 39 ms to 17 s in the same process: the gateways'
client secrets are high-entropy and checked as SHA-256, never with a password hash."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import argon2
import argon2.low_level
import pytest

import guichet
from tests.unit.gateway.support import PERSONA, World, ir_path, open_world

SOURCE = Path(guichet.__file__).parent
# What runs when a partner calls a gateway: its app, the authorization server, the APIs,
# the edge, and the federation the FranceConnect mode asks.
GATEWAY_PATH = ["gateway", "oauth", "apis", "federation", "journal", "connections.py"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with open_world("sqlite", tmp_path_factory.mktemp("no-argon2")) as world:
        yield world


def test_a_token_and_a_call_never_hash_with_argon2(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*_: object, **__: object) -> None:
        raise AssertionError("argon2 on the gateway's path")

    for name in ("hash", "verify", "check_needs_rehash"):
        monkeypatch.setattr(argon2.PasswordHasher, name, forbidden)
    for name in ("hash_secret", "hash_secret_raw", "verify_secret"):
        monkeypatch.setattr(argon2.low_level, name, forbidden)
    partner = world.default
    assert partner is not None
    token = world.token(partner)  # client_secret_basic + mutual TLS, checked as SHA-256
    answer = world.get(ir_path(world.year - 1, PERSONA), token=token, cert=partner.cert_pem)
    assert answer.status_code == 200, answer.text
    refused = world.request(
        "POST",
        "/token",
        cert=partner.cert_pem,
        data={"grant_type": "client_credentials"},
        auth=(partner.client_id, "pas-le-secret"),
    )
    assert refused.status_code == 401


def _modules(entry: str) -> Iterator[Path]:
    path = SOURCE / entry
    yield from (path.rglob("*.py") if path.is_dir() else [path])


@pytest.mark.parametrize("entry", GATEWAY_PATH)
def test_no_gateway_module_imports_argon2(entry: str) -> None:
    for module in _modules(entry):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] in ("argon2", "passlib") for n in names), module

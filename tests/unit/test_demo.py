"""The demo partner of ``guichet run``: the whole sandbox perimeter, brought up to date on an
older data directory without new credentials, and ``credentials.json``'s ``apis``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from guichet.apis import DOCUMENTS
from guichet.catalog.products import FICOBA_DATA_SCOPES, IR_DATA_SCOPES, PRODUCTS
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.demo import api_endpoints, ensure_demo
from guichet.gateway.app import OPENAPI_DOCUMENTS
from guichet.habilitation.models import Habilitation, HabilitationEvent
from guichet.oauth.models import Client
from guichet.pki import LocalPki, ensure_local_pki
from guichet.runtime import Runtime
from guichet.secrets import MasterSecret
from guichet.settings import Settings

YEARS = ["dgfip_annee_n_moins_1", "dgfip_annee_n_moins_2", "dgfip_annee_n_moins_3"]
RESOURCE_SCOPES = sorted(
    PRODUCTS["impot_particulier"].resource_scopes
    | PRODUCTS["r2p"].resource_scopes
    | PRODUCTS["ficoba"].resource_scopes
)


@pytest.fixture
def runtime(
    engine: Engine,
    session_factory: sessionmaker[Session],
    master_secret: MasterSecret,
    clock: FrozenClock,
    tmp_path: Path,
) -> Runtime:
    return Runtime(
        Settings(data_dir=tmp_path / "var", sandbox_port=18443),
        engine,
        session_factory,
        master_secret,
        clock,
    )


@pytest.fixture
def pki(runtime: Runtime) -> LocalPki:
    return ensure_local_pki(
        runtime.settings.data_dir / "pki", runtime.clock.now(), hosts=["127.0.0.1"]
    )


def _credentials(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def _client(session: Session, client_id: str) -> Client | None:
    return session.scalar(select(Client).where(Client.client_id == client_id))


def _events(runtime: Runtime, name: str) -> list[HabilitationEvent]:
    with runtime.session_factory() as session:
        query = select(HabilitationEvent).where(HabilitationEvent.name == name)
        return list(session.scalars(query))


def _expected_apis(origin: str) -> dict[str, dict[str, str]]:
    """Every document the gateway serves (``/openapi/<slug>.json``): all are of Impôt
    Particulier, R2P or FICOBA, the demo partner's APIs."""
    return {
        key: {
            "base_url": origin + DOCUMENTS[key].base_path,
            "openapi_url": f"{origin}/openapi/{slug}.json",
        }
        for slug, key in OPENAPI_DOCUMENTS.items()
    }


def test_the_demo_partner_holds_the_whole_sandbox_perimeter(
    runtime: Runtime, pki: LocalPki
) -> None:
    path, created = ensure_demo(runtime, pki)
    assert created
    creds = _credentials(path)
    with runtime.session_factory() as session:
        hab = session.get(Habilitation, uuid.UUID(creds["habilitation_id"]))
        assert hab is not None
        assert sorted(hab.apis) == ["ficoba", "impot_particulier", "r2p"]
        assert sorted(hab.access_modes) == ["etat_civil", "spi"]
        assert sorted(hab.data_scopes) == sorted(IR_DATA_SCOPES | FICOBA_DATA_SCOPES)
        assert hab.status.value == "active"
        assert sorted(hab.year_scopes) == YEARS
        client = _client(session, creds["client_id"])
        assert client is not None
        assert client.scopes == RESOURCE_SCOPES
    assert creds["scopes"] == RESOURCE_SCOPES


def test_credentials_json_lists_every_api_with_its_base_and_document(
    runtime: Runtime, pki: LocalPki
) -> None:
    path, _ = ensure_demo(runtime, pki)
    origin = "https://127.0.0.1:18443"
    apis = _credentials(path)["apis"]
    assert apis == _expected_apis(origin)
    assert apis["impot_particulier"] == {
        "base_url": f"{origin}/impotparticulier/1.0",
        "openapi_url": f"{origin}/openapi/impotparticulier.json",
    }
    assert apis["r2p"] == {
        "base_url": f"{origin}/r2p/v1",
        "openapi_url": f"{origin}/openapi/r2p.json",
    }
    assert apis["ficoba"] == {
        "base_url": f"{origin}/fcb-masrestit/api/v2",
        "openapi_url": f"{origin}/openapi/ficoba.json",
    }
    if "impot_particulier_os" in OPENAPI_DOCUMENTS.values():
        assert apis["impot_particulier_os"] == {
            "base_url": f"{origin}/impotparticulier",
            "openapi_url": f"{origin}/openapi/impotparticulier-os.json",
        }
    # The existing keys stay.
    creds = _credentials(path)
    assert creds["api_base_url"] == apis["impot_particulier"]["base_url"]
    assert creds["r2p_base_url"] == apis["r2p"]["base_url"]
    assert creds["token_url"] == f"{origin}/token"


def test_only_the_documents_of_the_habilitations_apis_are_listed() -> None:
    origin = "https://gw.example"
    only_r2p = api_endpoints(origin, ["r2p"])
    assert only_r2p == {
        "r2p": {"base_url": f"{origin}/r2p/v1", "openapi_url": f"{origin}/openapi/r2p.json"}
    }
    assert "r2p" not in api_endpoints(origin, ["impot_particulier"])
    assert api_endpoints(origin, []) == {}


def test_a_second_start_changes_nothing(runtime: Runtime, pki: LocalPki) -> None:
    path, _ = ensure_demo(runtime, pki)
    before = path.read_bytes()
    again, created = ensure_demo(runtime, pki)
    assert (again, created) == (path, False)
    assert path.read_bytes() == before
    assert _events(runtime, "habilitation:updated") == []
    with runtime.session_factory() as session:
        assert len(session.scalars(select(Habilitation)).all()) == 1
        assert len(session.scalars(select(Client)).all()) == 1


def test_an_older_demo_habilitation_is_brought_to_the_whole_perimeter(
    runtime: Runtime, pki: LocalPki
) -> None:
    """A data directory made before N-3 was granted (and with a data scope the catalogue
    has since dropped): the next start updates it through the domain, keeps its
    credentials, and a start after that changes nothing more."""
    path, _ = ensure_demo(runtime, pki)
    first = _credentials(path)
    with transaction(runtime.session_factory) as session:
        hab = session.get(Habilitation, uuid.UUID(first["habilitation_id"]))
        assert hab is not None
        hab.year_scopes = YEARS[:2]
        hab.data_scopes = [*sorted(IR_DATA_SCOPES)[:3], "dgfip_retired_scope"]
        hab.quotas = {"impot_particulier": 60, "r2p": 30}
        thumbprints = sorted(c.thumbprint for c in hab.certificates)
        client = _client(session, first["client_id"])
        assert client is not None
        client.scopes = ["RessourceIR", "RessourceR2P"]
    old = dict(first, scopes=["RessourceIR", "RessourceR2P"])
    path.write_text(json.dumps(old, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    _, created = ensure_demo(runtime, pki)
    assert not created
    updated = _events(runtime, "habilitation:updated")
    assert [(e.actor, str(e.habilitation_id)) for e in updated] == [
        ("guichet init", first["habilitation_id"])
    ]
    with runtime.session_factory() as session:
        hab = session.get(Habilitation, uuid.UUID(first["habilitation_id"]))
        assert hab is not None
        assert sorted(hab.year_scopes) == YEARS
        assert sorted(hab.data_scopes) == sorted(IR_DATA_SCOPES | FICOBA_DATA_SCOPES)
        # The partner's own kept; an API added since gets its default.
        assert hab.quotas == {"impot_particulier": 60, "r2p": 30, "ficoba": 200}
        assert sorted(c.thumbprint for c in hab.certificates) == thumbprints
        client = _client(session, first["client_id"])
        assert client is not None
        assert client.scopes == RESOURCE_SCOPES
        assert len(session.scalars(select(Client)).all()) == 1
    now = _credentials(path)
    # The same credentials: no new client, secret or certificate.
    for key in ("client_id", "client_secret", "habilitation_id", "cert_file", "key_file"):
        assert now[key] == first[key], key
    assert now["scopes"] == RESOURCE_SCOPES

    before = path.read_bytes()
    ensure_demo(runtime, pki)
    assert len(_events(runtime, "habilitation:updated")) == 1
    assert path.read_bytes() == before


def test_the_urls_follow_the_configured_ports(runtime: Runtime, pki: LocalPki) -> None:
    path, _ = ensure_demo(runtime, pki)
    first = _credentials(path)
    moved = Runtime(
        Settings(data_dir=runtime.settings.data_dir, sandbox_port=19443),
        runtime.engine,
        runtime.session_factory,
        runtime.master,
        runtime.clock,
    )
    _, created = ensure_demo(moved, pki)
    assert not created
    creds = _credentials(path)
    origin = "https://127.0.0.1:19443"
    assert creds["token_url"] == f"{origin}/token"
    assert creds["api_base_url"] == f"{origin}/impotparticulier/1.0"
    assert creds["apis"] == _expected_apis(origin)
    assert creds["client_secret"] == first["client_secret"]

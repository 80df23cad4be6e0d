"""The new resources through the in-process gateway: the resource scopes at ``/token`` and
in the chain, the answers and their journal records."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from guichet.catalog.products import (
    FACTURE_MEDIA_TYPE,
    IFI_MEDIA_TYPE,
    LEP_MEDIA_TYPE,
    TH_MEDIA_TYPE,
)
from guichet.sandbox import personas
from tests.conftest import BACKENDS
from tests.unit.gateway.support import World, open_world, refused, served

NEW_SCOPES = {"RessourceIRFacture", "RessourceIFI", "RessourceTHPrincipale", "RessourceLEP"}


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    postgres = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    with open_world(request.param, tmp_path_factory.mktemp("resources"), postgres) as world:
        yield world


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def paths(world: World) -> dict[str, tuple[str, str, str]]:
    """Operation → (path, media type, resource scope), for N-1."""
    n1 = world.year - 1
    base = "/impotparticulier/1.0/spi"
    return {
        "factures": (
            f"{base}/{personas.COUPLE_1.spi}/situations/ir/factures/annrev/{n1}",
            FACTURE_MEDIA_TYPE,
            "RessourceIRFacture",
        ),
        "ifi": (
            f"{base}/{personas.FULL_1.spi}/situations/ifiisf/assiettes/annrev/{n1}",
            IFI_MEDIA_TYPE,
            "RessourceIFI",
        ),
        "th": (
            f"{base}/{personas.FULL_1.spi}/situations/th/assiettes/principale/annrev/{n1}",
            TH_MEDIA_TYPE,
            "RessourceTHPrincipale",
        ),
        "lep": (
            f"{base}/{personas.SHARED_23255.spi}/lep/departement/87/annrev/{n1}"
            f"/bareme/{world.year}",
            LEP_MEDIA_TYPE,
            "RessourceLEP",
        ),
    }


def test_an_empty_scope_request_gets_the_new_resource_scopes(world: World) -> None:
    partner = world.default
    assert partner is not None
    token = world.token(partner)
    assert set(claims(token)["scope"].split()) >= NEW_SCOPES
    for name, (path, media, _scope) in paths(world).items():
        r = world.get(path, token=token, cert=partner.cert_pem)
        assert r.headers["content-type"].startswith(media), name
        spi = path.split("/")[4]
        record = served(world, r, partner, spi=spi)
        assert record["operation"].startswith("GET ")
    body = world.get(paths(world)["lep"][0], token=token, cert=partner.cert_pem).json()
    assert body == {"statut": "O"}


def test_a_token_narrowed_to_some_resources_is_refused_the_others(world: World) -> None:
    partner = world.default
    assert partner is not None
    token = world.token(partner, scope="RessourceIRFacture RessourceLEP")
    assert set(claims(token)["scope"].split()) == {"RessourceIRFacture", "RessourceLEP"}
    for name, (path, _media, scope) in paths(world).items():
        r = world.get(path, token=token, cert=partner.cert_pem)
        if scope in ("RessourceIRFacture", "RessourceLEP"):
            assert r.status_code == 200, name
        else:
            refused(world, r, 403, "scope_not_granted")


def test_token_refuses_a_resource_scope_the_client_was_not_granted(world: World) -> None:
    partner = world.partner(scopes=("RessourceIR", "RessourceIFI"))
    r = world.request(
        "POST",
        "/token",
        cert=partner.cert_pem,
        data={"grant_type": "client_credentials", "scope": "RessourceIFI RessourceLEP"},
        auth=(partner.client_id, partner.client_secret),
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_scope"
    token = world.token(partner)  # an empty request: what it was granted, no more
    assert set(claims(token)["scope"].split()) == {"RessourceIR", "RessourceIFI"}
    lep = paths(world)["lep"][0]
    refused(world, world.get(lep, token=token, cert=partner.cert_pem), 403, "scope_not_granted")


def test_the_habilitations_data_scopes_still_decide(world: World) -> None:
    partner = world.partner(data_scopes=("dgfip_rfr", "dgfip_nbpart"))
    token = world.token(partner)
    for name in ("ifi", "th", "lep"):
        r = world.get(paths(world)[name][0], token=token, cert=partner.cert_pem)
        spi = paths(world)[name][0].split("/")[4]
        refused(world, r, 403, "data_scope_not_granted", spi=spi)
    # The bill answers with the IR fields the habilitation grants, without the notice.
    r = world.get(paths(world)["factures"][0], token=token, cert=partner.cert_pem)
    assert {"rfr", "nbPart", "sitParDeclaree"} <= set(r.json())
    assert set(r.json()) <= {"rfr", "nbPart", "sitPart", "sitParDeclaree"}


def lep_path(world: World, spi: str, departement: str = "75") -> str:
    n1 = world.year - 1
    return (
        f"/impotparticulier/1.0/spi/{spi}/lep/departement/{departement}/annrev/{n1}"
        f"/bareme/{world.year}"
    )


def test_lep_no_answer_is_a_204_journaled_as_served(world: World) -> None:
    """ "204 : Aucune réponse ne peut être apportée" (her RFR is not established yet): no
    content, and the call journaled like any served one, with no data scope returned."""
    partner = world.default
    assert partner is not None
    token = world.token(partner)
    r = world.get(lep_path(world, personas.PENDING.spi), token=token, cert=partner.cert_pem)
    assert r.status_code == 204
    assert r.content == b""
    assert "content-type" not in r.headers
    assert "content-length" not in r.headers
    assert r.headers["cache-control"] == "no-store"
    assert "ratelimit" in r.headers  # counted against the quota like any served call
    assert r.headers["x-correlation-id"]
    record = world.record(r.headers["x-correlation-id"])
    assert record["outcome"] == "ok"
    assert record["http_status"] == 204
    assert record["data_scopes"] == []
    assert record["subject"] == world.master.pseudonym(personas.PENDING.spi)


def test_lep_refusals_carry_the_providers_codeapp(world: World) -> None:
    partner = world.default
    assert partner is not None
    token = world.token(partner)

    def get(path: str, token: str = token) -> Any:
        return world.get(path, token=token, cert=partner.cert_pem)

    r = get(lep_path(world, personas.NO_TAX.spi))
    refused(world, r, 410, "no_situation_for_year", spi=personas.NO_TAX.spi)
    assert r.json()["codeapp"] == 4101
    r = get(lep_path(world, "3000000020269"))
    refused(world, r, 410, "spi_unknown", spi="3000000020269")
    assert r.json()["codeapp"] == 4102
    r = get(lep_path(world, personas.SINGLE.spi, departement="99"))
    refused(world, r, 400, "parameter_invalid", spi=None)
    assert r.json()["codeapp"] == 4007
    r = get(lep_path(world, "3000000020268"))
    refused(world, r, 400, "spi_invalid")
    assert r.json()["codeapp"] == 4001
    # Any 403 of the operation: the chain's (resource scope) and the operation's (data).
    narrowed = world.token(partner, scope="RessourceIR")
    r = get(lep_path(world, personas.SINGLE.spi), token=narrowed)
    refused(world, r, 403, "scope_not_granted")
    assert r.json()["codeapp"] == 4031
    other = world.partner(data_scopes=("dgfip_rfr",))
    r = world.get(
        lep_path(world, personas.SINGLE.spi), token=world.token(other), cert=other.cert_pem
    )
    refused(world, r, 403, "data_scope_not_granted", spi=personas.SINGLE.spi)
    assert r.json()["codeapp"] == 4031
    # The other operations' problems carry none (the provider documents none for them).
    r = get(paths(world)["ifi"][0].replace(personas.FULL_1.spi, "3000000014264"))
    refused(world, r, 400, "spi_invalid")
    assert r.json()["codeapp"] == 4001
    r = get(paths(world)["factures"][0].replace(personas.COUPLE_1.spi, "3000000014264"))
    refused(world, r, 400, "spi_invalid")
    assert "codeapp" not in r.json()


def test_ifi_of_a_household_without_a_declaration_is_n(world: World) -> None:
    partner = world.default
    assert partner is not None
    path = paths(world)["ifi"][0].replace(personas.FULL_1.spi, personas.SINGLE.spi)
    r = world.get(path, token=world.token(partner), cert=partner.cert_pem)
    served(world, r, partner, spi=personas.SINGLE.spi)
    assert r.json() == {"indicateurIfiIsf": "N"}

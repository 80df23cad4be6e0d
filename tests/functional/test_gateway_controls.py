"""Issue 3's "done means": the demo sequence works, and each control refuses with its code.

One test drives a call for every outcome the controls produce, on partners of its own, then
finds each of them in the journal with the right outcome, and the chain verifies.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from guichet.habilitation.models import Environment
from guichet.pki import ensure_local_pki, issue_client_certificate
from tests.functional.conftest import Product, api_headers
from tests.support.factories import Partner, make_partner

PERSONA = "3999999930262"
IR_MEDIA = "application/prs.dgfip.part.situations.ir.assiettes.v1+json"
NOW = dt.datetime.now(dt.UTC)
N = NOW.year

# Every outcome the journal test must find: each control of issue 3 §4 refusing, and more.
JOURNALED_OUTCOMES = frozenset(
    {
        "ok",
        "certificate_missing",
        "certificate_not_declared",
        "ip_not_allowed",
        "token_missing",
        "token_invalid",
        "token_wrong_audience",
        "token_certificate_mismatch",
        "scope_not_granted",
        "year_not_granted",
        "habilitation_suspended",
        "quota_exceeded",
        "spi_invalid",
        "correlation_id_invalid",
        "route_not_found",
        "not_found",
        "too_many_answers",
        "invalid_client",  # a refused token request, journaled as POST /token
    }
)


def _call(
    product: Product,
    client: httpx.Client,
    path: str,
    token: str | None,
    outcome: str,
    status: int,
    headers: dict[str, str] | None = None,
    seen: list[tuple[str, str]] | None = None,
) -> httpx.Response:
    """One API call that must end with ``outcome``; noted in ``seen`` for the journal."""
    h = api_headers(token) if token else {"X-Correlation-ID": str(uuid.uuid4())}
    h.update(headers or {})
    r = client.get(path, headers=h)
    assert r.status_code == status, r.text
    if status != 200:
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert body["code"] == outcome
        assert body["status"] == status
        assert body["correlationId"] == r.headers["x-correlation-id"]
    if seen is not None:
        seen.append((r.headers["x-correlation-id"], outcome))
    return r


def _ir(spi: str = PERSONA, year: int = N - 1) -> str:
    return f"/impotparticulier/1.0/spi/{spi}/situations/ir/assiettes/annrev/{year}"


def test_demo_sequence_returns_the_personas_data(product: Product) -> None:
    with product.http(cert=product.demo_cert()) as c:
        token = product.token(c)
        r = _call(product, c, _ir(), token, "ok", 200)
    assert r.headers["content-type"].startswith(IR_MEDIA)
    body = r.json()
    assert "rfr" in body
    assert "nbPart" in body
    assert "RateLimit" in r.headers
    assert "RateLimit-Policy" in r.headers


def test_token_by_client_secret_post_and_tls_client_auth(product: Product) -> None:
    creds = product.credentials
    with product.http(cert=product.demo_cert()) as c:
        r = c.post(
            "/token",
            data={
                "grant_type": "client_credentials",
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
            },
        )
        assert r.status_code == 200, r.text
        r = c.post(
            "/token", data={"grant_type": "client_credentials", "client_id": creds["client_id"]}
        )
        assert r.status_code == 200, r.text
        _call(product, c, _ir(), r.json()["access_token"], "ok", 200)


def test_missing_and_undeclared_certificate(product: Product, tmp_path: Path) -> None:
    with product.http(cert=product.demo_cert()) as c:
        token = product.token(c)
    with product.http() as c:
        _call(product, c, _ir(), token, "certificate_missing", 401)
    pki = ensure_local_pki(product.data_dir / "pki", NOW, hosts=["127.0.0.1"])
    cert, key = issue_client_certificate(pki, "intrus", "Intrus", 10, NOW)
    (tmp_path / "c.crt").write_bytes(cert)
    (tmp_path / "c.key").write_bytes(key)
    with product.http(cert=(str(tmp_path / "c.crt"), str(tmp_path / "c.key"))) as c:
        _call(product, c, _ir(), token, "certificate_not_declared", 401)


def test_call_from_an_undeclared_address(product: Product) -> None:
    with product.http(cert=product.demo_cert()) as c:
        token = product.token(c)
    with product.http(cert=product.demo_cert(), local_address="127.0.0.2") as c:
        _call(product, c, _ir(), token, "ip_not_allowed", 403)


def test_token_from_the_other_environment(product: Product, tmp_path: Path) -> None:
    pki = ensure_local_pki(product.data_dir / "pki", NOW, hosts=["127.0.0.1"])
    demo = (
        Path(product.credentials["cert_file"]).read_bytes(),
        Path(product.credentials["key_file"]).read_bytes(),
    )
    prod = make_partner(
        product.session_factory,
        pki,
        tmp_path,
        NOW,
        name="Ville de Démoville",
        environment=Environment.PRODUCTION,
        certificate=demo,
    )
    time.sleep(0.5)  # the policy generation reaches the server
    with product.http(cert=product.demo_cert(), base_url=product.production_url) as c:
        prod_token = product.token(c, prod.client_id, prod.client_secret)
        # Production reads only the production store: empty, so the sandbox persona is unknown.
        _call(product, c, _ir(), prod_token, "not_found", 404)
    with product.http(cert=product.demo_cert()) as c:
        _call(product, c, _ir(), prod_token, "token_wrong_audience", 401)
        sandbox_token = product.token(c)
    with product.http(cert=product.demo_cert(), base_url=product.production_url) as c:
        _call(product, c, _ir(), sandbox_token, "token_wrong_audience", 401)


def test_scope_and_year_not_granted(product: Product) -> None:
    with product.http(cert=product.demo_cert()) as c:
        r2p_only = product.token(c, scope="RessourceR2P")
        _call(product, c, _ir(), r2p_only, "scope_not_granted", 403)
        token = product.token(c)
        _call(product, c, _ir(year=N - 4), token, "year_not_granted", 403)


def test_bad_input_and_unknown_person(product: Product) -> None:
    with product.http(cert=product.demo_cert()) as c:
        token = product.token(c)
        r = _call(product, c, _ir(spi="1234567890123"), token, "spi_invalid", 400)
        assert r.json()["field"] == "spi"
        r = c.get(_ir(), headers={"Authorization": f"Bearer {token}", "X-Correlation-ID": "abc"})
        assert r.status_code == 400
        assert r.json()["code"] == "correlation_id_invalid"
        uuid.UUID(r.headers["x-correlation-id"])
        _call(product, c, "/impotparticulier/1.0/nowhere", token, "route_not_found", 404)
        _call(product, c, _ir(), "not-a-jwt", "token_invalid", 401)
        _call(product, c, _ir(), None, "token_missing", 401)


def test_r2p_then_spi_two_call_mode(product: Product) -> None:
    with product.http(cert=product.demo_cert()) as c:
        token = product.token(c)
        person = _call(product, c, f"/r2p/v1/personne/{PERSONA}", token, "ok", 200).json()
        ec = person["personnePhysique"]["etatCivil"]
        assert person["personnePhysique"]["identifiant"]["spi"] == PERSONA
        # The provider's formats: sexe 1/2, JJ/MM/AAAA, 3-character commune code.
        query = {
            "nom": ec["lbNomNaissance"],
            "prenom": ec["lbPrenomNaissance"].split()[0],
            "sexe": ec["cdSexe"],
            "naisDate": f"{ec['jourNaissance']}/{ec['moisNaissance']}/{ec['anneeNaissance']}",
            "naisCodePays": ec["cdPaysNaissance"],
            "naisCodeDept": ec["cdDeptNaissance"],
            "naisCodeCommune": ec["cdCommuneNaissance"],
        }
        found = _call(
            product,
            c,
            "/r2p/v1/personne/spi?" + httpx.QueryParams(query).__str__(),
            token,
            "ok",
            200,
        ).json()
        assert found == {"identifiant": {"spi": PERSONA}}
        # Second call of the état-civil mode: the SPI just found gives the tax situation.
        _call(product, c, _ir(found["identifiant"]["spi"]), token, "ok", 200)


def test_suspension_applies_to_the_next_call(product: Product) -> None:
    hab = product.credentials["habilitation_id"]
    with product.http(cert=product.demo_cert()) as c:
        token = product.token(c)
        _call(product, c, _ir(), token, "ok", 200)
        listed = product.guichet("habilitation", "list", "--json").stdout
        assert hab in listed
        product.guichet("habilitation", "suspend", hab, "--reason", "incident de sécurité")
        _call(product, c, _ir(), token, "habilitation_suspended", 403)
        product.guichet("habilitation", "resume", hab, "--reason", "incident clos")
        _call(product, c, _ir(), token, "ok", 200)


def test_quota_exceeded(product: Product, tmp_path: Path) -> None:
    pki = ensure_local_pki(product.data_dir / "pki", NOW, hosts=["127.0.0.1"])
    partner = make_partner(
        product.session_factory,
        pki,
        tmp_path,
        NOW,
        name="Commune de Quota",
        siret="21000000610001",
        quotas={"impot_particulier": 3},
    )
    time.sleep(0.5)
    with product.http(cert=(str(partner.cert_file), str(partner.key_file))) as c:
        token = product.token(c, partner.client_id, partner.client_secret)
        for _ in range(3):
            _call(product, c, _ir(), token, "ok", 200)
        r = _call(product, c, _ir(), token, "quota_exceeded", 429)
    assert int(r.headers["Retry-After"]) >= 1


def _partner(product: Product, directory: Path, name: str, siret: str, **options: Any) -> Partner:
    pki = ensure_local_pki(product.data_dir / "pki", NOW, hosts=["127.0.0.1"])
    return make_partner(
        product.session_factory, pki, directory, NOW, name=name, siret=siret, **options
    )


def _drive_every_outcome(product: Product, tmp_path: Path) -> list[tuple[str, str]]:
    """A call for each outcome, on partners of this test's own (the demo partner is never
    suspended or exhausted here); the (correlation id, outcome) of each."""
    seen: list[tuple[str, str]] = []
    demo = product.demo_cert()
    quota = _partner(
        product,
        tmp_path / "q",
        "Commune du Quota",
        "21000000600028",
        quotas={"impot_particulier": 1},
    )
    suspended = _partner(product, tmp_path / "s", "Commune Suspendue", "21000000600036")
    intruder = _partner(product, tmp_path / "i", "Commune Intruse", "21000000600044")
    prod = _partner(
        product,
        tmp_path / "p",
        "Ville de Démoville",
        "21000000610001",
        environment=Environment.PRODUCTION,
        certificate=(Path(demo[0]).read_bytes(), Path(demo[1]).read_bytes()),
    )
    time.sleep(0.5)  # the policy generation reaches the server
    with product.http(cert=demo) as c:
        token = product.token(c)
        _call(product, c, _ir(), token, "ok", 200, seen=seen)
        _call(product, c, f"/r2p/v1/personne/{PERSONA}", token, "ok", 200, seen=seen)
        _call(product, c, _ir(year=N - 4), token, "year_not_granted", 403, seen=seen)
        _call(product, c, _ir(spi="1234567890123"), token, "spi_invalid", 400, seen=seen)
        _call(product, c, _ir(), None, "token_missing", 401, seen=seen)
        _call(product, c, _ir(), "not-a-jwt", "token_invalid", 401, seen=seen)
        _call(product, c, "/impotparticulier/1.0/nowhere", token, "route_not_found", 404, seen=seen)
        r2p_only = product.token(c, scope="RessourceR2P")
        _call(product, c, _ir(), r2p_only, "scope_not_granted", 403, seen=seen)
        homonym = (  # two persons: the sandbox's homonym personas
            "nom=Dupont&prenom=Jean&sexe=1&naisDate=05/05/1975"
            "&naisCodePays=99100&naisCodeDept=075&naisCodeCommune=111"
        )
        _call(
            product, c, f"/r2p/v1/personne/spi?{homonym}", token, "too_many_answers", 403, seen=seen
        )
        r = c.get(_ir(), headers={"Authorization": f"Bearer {token}", "X-Correlation-ID": "abc"})
        assert r.status_code == 400
        seen.append((r.headers["x-correlation-id"], "correlation_id_invalid"))
        sent = str(uuid.uuid4())
        r = c.post(
            "/token",
            data={"grant_type": "client_credentials"},
            auth=(product.credentials["client_id"], "not-the-secret"),
            headers={"X-Correlation-ID": sent},
        )
        assert r.status_code == 401
        assert r.headers["x-correlation-id"] == sent
        seen.append((sent, "invalid_client"))
    with product.http() as c:
        _call(product, c, _ir(), token, "certificate_missing", 401, seen=seen)
    with product.http(cert=demo, local_address="127.0.0.2") as c:
        _call(product, c, _ir(), token, "ip_not_allowed", 403, seen=seen)
    # A certificate the local CA issued, declared nowhere…
    pki = ensure_local_pki(product.data_dir / "pki", NOW, hosts=["127.0.0.1"])
    cert, key = issue_client_certificate(pki, "intrus", "Intrus", 10, NOW)
    (tmp_path / "undeclared.crt").write_bytes(cert)
    (tmp_path / "undeclared.key").write_bytes(key)
    with product.http(
        cert=(str(tmp_path / "undeclared.crt"), str(tmp_path / "undeclared.key"))
    ) as c:
        _call(product, c, _ir(), token, "certificate_not_declared", 401, seen=seen)
    # …and one declared on another habilitation than the token's, which is bound to the demo's.
    with product.http(cert=(str(intruder.cert_file), str(intruder.key_file))) as c:
        _call(product, c, _ir(), token, "token_certificate_mismatch", 401, seen=seen)
    with product.http(cert=demo, base_url=product.production_url) as c:
        prod_token = product.token(c, prod.client_id, prod.client_secret)
        _call(product, c, _ir(), prod_token, "not_found", 404, seen=seen)  # empty store
        _call(product, c, _ir(), token, "token_wrong_audience", 401, seen=seen)
    with product.http(cert=demo) as c:
        _call(product, c, _ir(), prod_token, "token_wrong_audience", 401, seen=seen)
    with product.http(cert=(str(suspended.cert_file), str(suspended.key_file))) as c:
        suspended_token = product.token(c, suspended.client_id, suspended.client_secret)
        product.guichet(
            "habilitation", "suspend", suspended.habilitation_id, "--reason", "contrôle"
        )
        _call(product, c, _ir(), suspended_token, "habilitation_suspended", 403, seen=seen)
    with product.http(cert=(str(quota.cert_file), str(quota.key_file))) as c:
        quota_token = product.token(c, quota.client_id, quota.client_secret)
        _call(product, c, _ir(), quota_token, "ok", 200, seen=seen)
        _call(product, c, _ir(), quota_token, "quota_exceeded", 429, seen=seen)
    return seen


def test_every_outcome_is_in_the_journal_and_it_verifies(product: Product, tmp_path: Path) -> None:
    seen = _drive_every_outcome(product, tmp_path)
    assert {outcome for _, outcome in seen} == JOURNALED_OUTCOMES
    out = tmp_path / "journal.jsonl"
    product.guichet("journal", "export", "--format", "jsonl", "--output", str(out))
    records = {}
    for line in out.read_text().splitlines():
        rec = json.loads(line)
        records[rec["correlation_id"]] = rec
    for correlation_id, outcome in seen:
        assert correlation_id in records, outcome
        assert records[correlation_id]["outcome"] == outcome, correlation_id
    # The two refusals this module adds to issue 3's list, in detail.
    by_outcome = {outcome: records[cid] for cid, outcome in seen}
    assert by_outcome["invalid_client"]["operation"] == "POST /token"
    assert by_outcome["invalid_client"]["client_id"] == product.credentials["client_id"]
    assert by_outcome["too_many_answers"]["api"] == "r2p"
    assert by_outcome["too_many_answers"]["subject"] is None  # nobody was designated
    assert PERSONA not in out.read_text()  # subjects are pseudonyms, never the SPI
    # Nor do the server's logs carry it (URLs hold SPIs: no access log).
    log = product.log_file.read_text()
    served = log.split("Ctrl-C", 1)[1]  # the banner's example names the persona on purpose
    assert PERSONA not in served
    assert product.credentials["client_secret"] not in log
    result = product.guichet("journal", "verify")
    assert result.returncode == 0


@pytest.mark.parametrize(
    "path", ["/healthz", "/openapi/impotparticulier.json", "/openapi/r2p.yaml"]
)
def test_public_documents(product: Product, path: str) -> None:
    with product.http() as c:
        assert c.get(path).status_code == 200


def test_the_sandbox_federation_is_served(product: Product) -> None:
    r = httpx.get(product.federation_url + "/.well-known/openid-configuration", timeout=10)
    assert r.status_code == 200
    assert r.json()["issuer"] == product.federation_url

"""Schemathesis against API FICOBA through the gateway: no 5xx, whatever the body, headers
and media type.

The cases come from guichet's published document (``/openapi/ficoba.yaml``): valid ones
(its examples name sandbox personas, so searches find accounts) and invalid ones
(schemathesis' negative mode: wrong types, missing members, unknown members, other media
types, missing headers). Each is sent with a valid token over the partner's certificate to the
in-process gateway (the control chain, the body reading, the handler, the search, the journal),
on each database of ``GUICHET_TEST_BACKENDS``. Every answer must be a documented status of the
operation, never a 5xx, with a body that guichet's document describes; the document's own
request examples are sent first, and must be served. Bounded: at most
``MAX_EXAMPLES`` cases per operation and ``BUDGET_SECONDS`` of sending.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode

from guichet.apis import load_openapi
from guichet.habilitation.models import Environment
from tests.conftest import BACKENDS
from tests.support.contracts import ApiDocument, build_document, guichet_errors, media_type_of
from tests.support.factories import Partner
from tests.unit.apis.ficoba.support import ficoba_partner, open_now
from tests.unit.gateway.support import BASE_URL, World, at_the_edge, open_world

MAX_EXAMPLES = 40  # per operation and generation mode
BUDGET_SECONDS = 60.0  # per operation: past it, the remaining cases are not sent
ORIGIN = "https://127.0.0.1:8443"
NOT_SET = object()
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
OPERATIONS = [
    ("GET", "/etatSante"),
    ("POST", "/comptes/numCpte"),
    ("POST", "/comptes/siretSiren"),
    ("POST", "/comptes/spi"),
    ("POST", "/comptes/perPhy"),
    ("POST", "/comptes/perPro"),
    ("POST", "/comptes/multiDet"),
    ("POST", "/comptes/verifIban"),
]


@dataclass
class Fuzz:
    world: World
    partner: Partner
    token: str
    document: dict[str, Any]
    guichet: ApiDocument


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fuzz]:
    postgres = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    with open_world(request.param, tmp_path_factory.mktemp("ficoba-fuzz"), postgres) as world:
        open_now(world)
        partner = ficoba_partner(world, quotas={"ficoba": 100_000})
        document = load_openapi("ficoba", ORIGIN)
        yield Fuzz(world, partner, world.token(partner), document, build_document(document))


def _send(f: Fuzz, case: Case) -> httpx.Response:
    """The case as schemathesis would send it, with the partner's token and certificate."""
    sent = case.as_transport_kwargs(base_url=BASE_URL + "/fcb-masrestit/api/v2")
    headers = {k: str(v) for k, v in (sent.get("headers") or {}).items()}
    headers["Authorization"] = f"Bearer {f.token}"
    correlation = next((v for k, v in headers.items() if k.lower() == "x-correlation-id"), None)
    if correlation is not None and CANONICAL_UUID.fullmatch(correlation):
        # Each call its own id; a malformed one is the case under test and stays.
        headers = {k: v for k, v in headers.items() if k.lower() != "x-correlation-id"}
        headers["X-Correlation-ID"] = str(uuid.uuid4())
    content: bytes | None = None
    if "json" in sent:
        content = json.dumps(sent["json"]).encode()
    elif sent.get("data") is not None:
        data = sent["data"]
        content = data if isinstance(data, bytes) else str(data).encode()
    target = at_the_edge(f.world.apps[Environment.SANDBOX], "127.0.0.1", f.partner.cert_pem)

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=target)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            return await client.request(
                sent["method"], sent["url"], headers=headers, content=content
            )

    return f.world.loop.run(send())


def _problems(f: Fuzz, r: httpx.Response) -> list[str]:
    """What is wrong with an answer: a 5xx, an undocumented status, a body guichet's document
    does not describe."""
    status = r.status_code
    if status >= 500:
        return [f"{status}: {r.text[:200]}"]
    op = f.guichet.find(r.request.method, r.request.url.path)
    documented = op.response(status) if op is not None else None
    if documented is None:
        return [f"{status} is not documented for {r.request.method} {r.request.url.path}"]
    schema = documented.schema_for(r.headers.get("content-type"))
    if schema is None:
        return [f"{status} answered {media_type_of(r.headers.get('content-type'))!r}"]
    try:
        body = r.json()
    except ValueError:
        return [f"{status}: not JSON: {r.text[:80]!r}"]
    return [f"{status} {e.path}: {e.message}" for e in guichet_errors(schema, body)]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[p for _m, p in OPERATIONS])
def test_fuzzing_ficoba_finds_no_server_error(fuzz: Fuzz, method: str, path: str) -> None:
    schema = schemathesis.openapi.from_dict(fuzz.document)
    operation = schema[path][method]
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    started = time.monotonic()
    statuses: dict[int, int] = {}
    samples: dict[str, str] = {}  # an answer of each kind, to say why when a check fails
    found: list[str] = []

    @settings(
        max_examples=2 * MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Case) -> None:
        if time.monotonic() - started > BUDGET_SECONDS:
            return
        r = _send(fuzz, case)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        samples.setdefault(f"{r.status_code} {r.text[:60]}", case.as_curl_command()[-200:])
        found.extend(f"{p} — {case.as_curl_command()[:300]}" for p in _problems(fuzz, r))

    # The document's own examples first (sandbox personas: they find accounts), then the
    # generated cases.
    described = fuzz.document["paths"][path][method.lower()]
    content = (described.get("requestBody") or {}).get("content", {}).get("application/json", {})
    request_id = "X-request-ID" if path == "/etatSante" else "X-Request-ID"
    bodies = [e["value"] for e in (content.get("examples") or {}).values()] or [NOT_SET]
    for index, body in enumerate(bodies):
        headers = {"X-Correlation-ID": str(uuid.uuid4()), request_id: f"exemple-{index}"}
        if body is NOT_SET:
            example = operation.Case(headers=headers)
        else:
            example = operation.Case(body=body, headers=headers, media_type="application/json")
        r = _send(fuzz, example)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        found.extend(f"{p} — example {index}" for p in _problems(fuzz, r))
        assert r.status_code == 200, r.text  # the examples are valid requests
    run()
    assert not found, "\n".join(sorted(set(found))[:20])
    seen = "\n".join(f"{k} ← {v}" for k, v in list(samples.items())[:12])
    assert sum(statuses.values()) >= 10, seen  # the cases reached the gateway
    if method == "POST":
        assert 200 in statuses, seen  # some cases got past validation to the search
        assert 400 in statuses, seen  # and some were refused, naming the member


# What random generation rarely hits: NUL (which PostgreSQL refuses in text), control and
# surrogate-free astral characters, very long strings, numbers and nulls where strings go.
ODD_VALUES: list[Any] = ["Du\x00pont", "\x01\x1f\x7f", "𝔇𝔲𝔭𝔬𝔫𝔱", "A" * 5000, 12, None, [], {}]
BODIES: dict[str, list[dict[str, Any]]] = {
    "/comptes/numCpte": [{"criteresRecherche": {"iban": v}} for v in ODD_VALUES],
    "/comptes/siretSiren": [{"criteresRecherche": {"siren": v}} for v in ODD_VALUES],
    "/comptes/spi": [{"criteresRecherche": {"numeroSPI": v}} for v in ODD_VALUES],
    "/comptes/perPhy": [
        {
            "criteresRecherche": {
                "etatCivil": {"nom": v, "prenoms": v},
                "domiciliation": {"libelleVoie": v},
            }
        }
        for v in ODD_VALUES
    ]
    + [
        {
            "criteresRecherche": {
                "etatCivil": {"nom": "Dupont"},
                "lieuNaissance": {"codeCommuneNaissance": v},
            }
        }
        for v in ODD_VALUES
    ],
    "/comptes/perPro": [
        {"criteresRecherche": {"designation": {"raisonSociale": v, "sigle": v, "enseigne": v}}}
        for v in ODD_VALUES
    ],
    "/comptes/multiDet": [
        {
            "criteresRecherche": {
                "recherchePP": "O",
                "codeNatureCompte": v,
                "criteresRecherchePhy": {"etatCivil": {"nom": v}},
            }
        }
        for v in ODD_VALUES
    ],
    "/comptes/verifIban": [
        {"criteresRecherche": {"recherchePM": "O", "iban": v, "designation": {"raisonSociale": v}}}
        for v in ODD_VALUES
    ],
}


@pytest.mark.parametrize("path", sorted(BODIES))
def test_odd_strings_are_never_a_server_error(fuzz: Fuzz, path: str) -> None:
    target = at_the_edge(fuzz.world.apps[Environment.SANDBOX], "127.0.0.1", fuzz.partner.cert_pem)
    found: list[str] = []
    for body in BODIES[path] + [
        {**b, "motif": "\x00", "dateDemande": "2026-02-30"} for b in BODIES[path][:1]
    ]:
        headers = {
            "Authorization": f"Bearer {fuzz.token}",
            "X-Correlation-ID": str(uuid.uuid4()),
            "X-Request-ID": "fuzz",
            "Content-Type": "application/json",
        }

        async def send(body: Any = body, headers: dict[str, str] = headers) -> httpx.Response:
            transport = httpx.ASGITransport(app=target)
            async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
                return await client.post(
                    "/fcb-masrestit/api/v2" + path, headers=headers, content=json.dumps(body)
                )

        r = fuzz.world.loop.run(send())
        found += [f"{p} — {json.dumps(body)[:120]}" for p in _problems(fuzz, r)]
    assert not found, "\n".join(found)

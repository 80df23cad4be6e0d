"""A client written against the provider's documents works against guichet: every operation of
API Impôt Particulier (by SPI and in FranceConnect mode), the convention's OS1–OS9 contract and
R2P, called through the in-process gateway for every persona and granted year, each answer
checked against the provider's document (strict: OpenAPI 3.0 semantics, no property it does
not define) and against guichet's published document.

The provider's documents come from ``GUICHET_PROVIDER_CONTRACTS`` (``tests/support/contracts``);
without them this module is skipped. Each test collects every deviation of its operation and
fails once, grouped by kind, with the personas and years each was seen for.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from starlette.types import ASGIApp

from guichet.catalog.products import PRODUCTS, YEAR_SCOPES
from guichet.db import transaction
from guichet.federation.checktoken import HttpFederationCheck
from guichet.federation.clients import RegisteredClient, register_client
from guichet.federation.models import ClientKind
from guichet.federation.scopes import DATA_SCOPES as FEDERATION_DATA_SCOPES
from guichet.federation.server import FederationDeps
from guichet.federation_web.app import build_federation_app
from guichet.records.models import Person
from guichet.sandbox.personas import PERSONAS, Persona
from tests.conftest import BACKENDS
from tests.support.contracts import (
    IMPOT_PARTICULIER,
    NULLABLE,
    OS_DOCUMENT,
    OS_NULLABLE,
    PROBLEM_MEDIA,
    R2P,
    ApiDocument,
    Deviation,
    Deviations,
    Operation,
    Response,
    contracts_folder,
    guichet_document,
    guichet_errors,
    media_type_matches,
    media_type_of,
    provider_document,
    provider_errors,
)
from tests.support.factories import Partner
from tests.unit.apis.test_franceconnect_gateway import _app_with
from tests.unit.federation.test_checktoken import IDENTITY, ISSUER, Federation
from tests.unit.gateway.support import World, open_world

# The provider's operations, by operationId [api-impot-particulier.json, api-r2p.json].
SPI_OPERATIONS = (
    "SituationsIrAssiettesV1",
    "SituationsIrAssiettesMultipleV1",
    "derniereSituationsIrAssiettesV1",
    "situationsIrAssiettesDeuxDernierMillesimeV1",
    "SituationsIrFacturesV1",
    "SituationIfiIsfV1",
    "SituationsTHPV1",
    "Ouverturelep",
)
FC_OPERATIONS = (
    "SituationsIrAssiettesFCV1",
    "SituationsIrAssiettesMultipleFCV1",
    "derniereSituationsIrAssiettesFCV1",
    "situationsIrAssiettesDeuxDernierMillesimeFCV1",
    "SituationsIrFacturesFCV1",
    "SituationIfiIsfFCV1",
    "SituationsTHPFCV1",
)
R2P_OPERATIONS = ("RechercheParSPI", "RechercheParEtatCivil", "RechercheParCriteres")
# The convention's offers of service, at ``/impotparticulier/osX/{ANNEE}`` [003 annexe 3 §3.2].
OS_NUMBERS = tuple(range(1, 10))
# Refusals that are answers a persona exists for, not deviations: no data (404), the LEP's
# "gone" (410), R2P's not communicable and too many answers (403). Anything else — a 400 on
# a request in the provider's formats, a 401, a 403 for a right the habilitation grants, a
# 5xx — is a deviation.
ANSWERED_REFUSALS: dict[int, frozenset[str] | None] = {
    404: None,
    410: None,
    403: frozenset({"not_communicable", "too_many_answers"}),
}
# LEP: any department the provider accepts; the barème year follows the income year (CMF
# art. R221-33: annrev is one of the two years before it).
LEP_DEPARTEMENT = "75"
SEXE = {"M": "1", "F": "2", "1": "1", "2": "2"}
ID_TELESERVICE = "guichet-conformance"
# Everything the sandbox lets a partner be granted: every data scope of the catalogue, every
# year, the three access modes, every resource scope (``make_partner``'s default).
ALL_DATA_SCOPES = tuple(sorted(frozenset().union(*(p.data_scopes for p in PRODUCTS.values()))))
ALL_YEARS = tuple(YEAR_SCOPES)
# What the citizen consents to: all of it the federation can carry (the service provider
# bound to the habilitation may ask for no more).
CONSENTED = " ".join(
    [IDENTITY, *sorted((set(ALL_DATA_SCOPES) | set(ALL_YEARS)) & FEDERATION_DATA_SCOPES)]
)


@dataclass
class Conformance:
    """One seeded gateway (personas and 20 households), one partner granted the whole sandbox
    perimeter, the sandbox federation to sign its citizens in, and the documents."""

    world: World
    partner: Partner
    app: ASGIApp
    token: str
    fed: Federation
    service: RegisteredClient
    provider_ip: ApiDocument
    provider_r2p: ApiDocument
    persons: dict[str, Person]
    citizens: dict[str, str] = field(default_factory=dict)

    @property
    def years(self) -> tuple[int, ...]:
        n = self.world.year
        return tuple(n - YEAR_SCOPES[s] for s in ALL_YEARS)

    def citizen(self, spi: str) -> str:
        """A federation token of this citizen, consented to every data scope and year."""
        if spi not in self.citizens:
            self.citizens[spi] = self.world.loop.run(
                self.fed.citizen_token(self.service, spi, CONSENTED)
            )
        return self.citizens[spi]

    def call(
        self, path: str, query: dict[str, str] | None = None, citizen: str | None = None
    ) -> httpx.Response:
        headers = {"ID_Teleservice": ID_TELESERVICE}
        if citizen is not None:
            headers["X-FranceConnect-OAuth"] = self.citizen(citizen)
        target = f"{path}?{urlencode(query)}" if query else path
        return self.world.get(
            target, token=self.token, cert=self.partner.cert_pem, app=self.app, headers=headers
        )


@pytest.fixture(scope="module", params=BACKENDS)
def conformance(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Conformance]:
    folder = contracts_folder()  # skips before anything is built
    provider_ip = provider_document(IMPOT_PARTICULIER, folder)
    provider_r2p = provider_document(R2P, folder)
    postgres = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    with open_world(request.param, tmp_path_factory.mktemp("conformance"), postgres) as world:
        rt = world.runtime
        partner = world.partner(
            access_modes=("spi", "etat_civil", "franceconnect"),
            data_scopes=ALL_DATA_SCOPES,
            year_scopes=ALL_YEARS,
            quotas={"impot_particulier": 100_000, "r2p": 100_000},
        )
        with transaction(rt.session_factory) as session:
            provider = register_client(
                session, kind=ClientKind.DATA_PROVIDER, name="DGFiP", now=world.clock.now()
            )
        fed_app = build_federation_app(
            FederationDeps(
                issuer=ISSUER,
                session_factory=rt.session_factory,
                master=rt.master,
                clock=world.clock,
            )
        )
        fed = Federation(rt.session_factory, world.clock, rt.master, fed_app, provider)
        check = HttpFederationCheck(fed.config(), world.clock, client=fed.http())
        app = _app_with(world, check)
        service = fed.service_provider(uuid.UUID(partner.habilitation_id), scopes=CONSENTED)
        world.reload()  # the binding reaches the gateway through its policy snapshot
        with rt.session_factory() as session:
            persons = {
                p.spi: person
                for p in PERSONAS
                if (person := session.get(Person, ("sandbox", p.spi))) is not None
            }
            session.expunge_all()
        yield Conformance(
            world,
            partner,
            app,
            world.token(partner, app=app),
            fed,
            service,
            provider_ip,
            provider_r2p,
            persons,
        )
        world.loop.run(check.aclose())


# --- checking one answer --------------------------------------------------------------------


@dataclass
class Checker:
    """Checks answers of one operation and collects what deviates."""

    name: str
    provider: Operation | None  # None for the OS contract: the convention has no document
    guichet: ApiDocument | None
    devs: Deviations = field(default_factory=Deviations)
    served: int = 0

    def check(self, r: httpx.Response, persona: str, year: int | None) -> Any:
        """Checks ``r`` and returns its JSON body (None when it has none)."""
        self.devs.calls += 1
        request = f"{r.request.method} {r.request.url.raw_path.decode()}"

        def add(check: str, message: str, path: str = "") -> None:
            self.devs.add(Deviation(self.name, check, path, message, persona, year, request))

        body = _json_body(r, add)
        g_op = None
        if self.guichet is not None:
            g_op = self.guichet.find(r.request.method, r.request.url.path)
            if g_op is None:
                add("guichet document", f"no operation of guichet's document for {request}")
        if 200 <= r.status_code < 300:
            self.served += 1
            self._success(r, body, g_op, add)
        else:
            self._refusal(r, body, g_op, add)
        return body

    def _success(self, r: httpx.Response, body: Any, g_op: Operation | None, add: Any) -> None:
        status = r.status_code
        if self.provider is not None:
            documented = self.provider.response(status)
            if documented is None:
                add(
                    "status",
                    f"{status} is not a status the provider documents for "
                    f"{self.provider.operation_id} ({', '.join(self.provider.responses)})",
                )
            else:
                _conforms(r, body, documented, "provider", True, add)
        if g_op is None:
            return
        documented = g_op.response(status)
        if documented is None:
            add("status", f"{status} is not documented in guichet's document")
            return
        _conforms(r, body, documented, "guichet document", False, add)
        if self.provider is None:  # the convention's shapes, as guichet restates them
            _conforms(r, body, documented, "convention", True, add)

    def _refusal(self, r: httpx.Response, body: Any, g_op: Operation | None, add: Any) -> None:
        status = r.status_code
        code = body.get("code") if isinstance(body, dict) else None
        allowed = ANSWERED_REFUSALS.get(status, frozenset())
        if allowed is not None and code not in allowed:
            detail = body.get("detail") if isinstance(body, dict) else r.text[:120]
            add("refused", f"{status} {code}: {detail}")
        if media_type_of(r.headers.get("content-type")) != PROBLEM_MEDIA:
            add("problem", f"Content-Type {r.headers.get('content-type')!r} for a {status}")
        if g_op is None:
            return
        documented = g_op.response(status)
        if documented is None:
            add("status", f"{status} ({code}) is not documented in guichet's document")
            return
        assert self.guichet is not None
        schema = documented.schema_for(PROBLEM_MEDIA) or self.guichet.problem_schema()
        if schema is None:
            add("guichet document", f"no problem+json schema for {status}")
        elif body is not None:
            for e in guichet_errors(schema, body):
                add("guichet Problem schema", e.message, e.path)

    def finish(self) -> None:
        if not self.served:
            self.devs.add(
                Deviation(
                    self.name,
                    "coverage",
                    "",
                    "no persona and year got a 2xx: the success answer was never checked",
                )
            )
        self.devs.check()


def _json_body(r: httpx.Response, add: Any) -> Any:
    if not r.content:
        return None
    try:
        return json.loads(r.content)
    except ValueError:
        add("body", f"not JSON: {r.text[:80]!r}")
        return None


def _conforms(
    r: httpx.Response, body: Any, documented: Response, source: str, strict: bool, add: Any
) -> None:
    """The answer against one documented response: body or none, media type, schema."""
    status = r.status_code
    check = f"{source} schema"
    if not documented.content:
        if r.content:
            add(f"{source} body", f"a body where {source} documents none for {status}")
        return
    if not r.content:
        add(f"{source} body", f"no body where {source} documents one for {status}")
        return
    content_type = r.headers.get("content-type")
    # The convention's check reads guichet's document again: its media type is checked once.
    matched = any(media_type_matches(m, content_type) for m in documented.media_types)
    if not matched and source != "convention":
        add(
            f"{source} media type",
            f"Content-Type {media_type_of(content_type)!r}, "
            f"documented: {', '.join(documented.media_types)}",
        )
    schema = documented.schema_for(content_type)
    if schema is None and len(documented.content) == 1:
        schema = next(iter(documented.content.values()))
    if schema is None or body is None:
        return
    if not strict:
        errors = guichet_errors(schema, body)
    else:
        errors = provider_errors(schema, body, OS_NULLABLE if source == "convention" else NULLABLE)
    for e in errors:
        add(check, e.message, e.path)


# --- calls ------------------------------------------------------------------------------------


def _fill(template: str, values: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise AssertionError(f"no value for the path parameter {name!r} of {template}")
        return values[name]

    return re.sub(r"\{([^}/]+)\}", value, template)


def _provider_operation(document: ApiDocument, operation_id: str) -> Operation:
    op = document.by_id(operation_id)
    if op is None:
        pytest.fail(f"the provider's {document.title!r} has no operation {operation_id}")
    return op


def _guichet(key: str, devs: Deviations, name: str) -> ApiDocument | None:
    try:
        return guichet_document(key)
    except AssertionError as exc:
        devs.add(Deviation(name, "guichet document", "", str(exc)))
        return None


def _checker(name: str, provider: Operation | None, key: str) -> Checker:
    devs = Deviations()
    return Checker(name, provider, _guichet(key, devs, name), devs)


def _person_calls(
    c: Conformance, op: Operation, *, citizen: bool
) -> Iterator[tuple[Persona, int | None, httpx.Response]]:
    """Every persona (a citizen the federation signs in, in FranceConnect mode) and every
    granted year (once, for the operations without one)."""
    yearly = "{annrev}" in op.path
    for persona in PERSONAS:
        if citizen and persona.spi not in c.persons:
            continue
        for year in c.years if yearly else (None,):
            values = {"spi": persona.spi, "departement": LEP_DEPARTEMENT}
            if year is not None:
                values |= {"annrev": str(year), "bareme": str(year + 1)}
            path = _fill(op.path, values)
            yield persona, year, c.call(path, citizen=persona.spi if citizen else None)


@pytest.mark.parametrize("operation_id", SPI_OPERATIONS)
def test_impot_particulier_by_spi(conformance: Conformance, operation_id: str) -> None:
    op = _provider_operation(conformance.provider_ip, operation_id)
    checker = _checker(operation_id, op, "impot_particulier")
    for persona, year, r in _person_calls(conformance, op, citizen=False):
        checker.check(r, persona.key, year)
    checker.finish()


@pytest.mark.parametrize("operation_id", FC_OPERATIONS)
def test_impot_particulier_in_franceconnect_mode(
    conformance: Conformance, operation_id: str
) -> None:
    op = _provider_operation(conformance.provider_ip, operation_id)
    checker = _checker(operation_id, op, "impot_particulier")
    for persona, year, r in _person_calls(conformance, op, citizen=True):
        checker.check(r, persona.key, year)
    checker.finish()


@pytest.mark.parametrize("number", OS_NUMBERS)
def test_offers_of_service(conformance: Conformance, number: int) -> None:
    """OS1–OS9: no provider document; guichet's own, read strictly with the convention's
    nullable values, is the contract."""
    checker = _checker(f"OS{number}", None, OS_DOCUMENT)
    for persona in PERSONAS:
        if persona.spi not in conformance.persons:
            continue
        for year in conformance.years:
            r = conformance.call(f"/impotparticulier/os{number}/{year}", citizen=persona.spi)
            checker.check(r, persona.key, year)
    checker.finish()


def etat_civil(person: Person) -> dict[str, str]:
    """The person's état civil in the provider's formats: sexe 1/2, naisDate JJ/MM/AAAA,
    3-character department and commune codes (the commune's last 3 of its COG)."""
    query = {
        "nom": person.nom_naissance.upper(),
        "prenom": person.prenoms.upper(),
        "sexe": SEXE[person.sexe],
        "naisDate": person.date_naissance.strftime("%d/%m/%Y"),
        "naisCodePays": person.code_pays_naissance,
    }
    if person.code_dept_naissance:
        query["naisCodeDept"] = person.code_dept_naissance.rjust(3, "0")
    if person.code_commune_naissance:
        query["naisCodeCommune"] = person.code_commune_naissance[-3:]
    return query


def address_filters(answer: Any) -> dict[str, str]:
    """The address criteria of ``/personne``, from a provider-shaped ``personnePhysique``."""
    try:
        adresse = answer["personnePhysique"]["adresse"]
    except (KeyError, TypeError):
        return {}
    wanted = {
        "adrCodePays": "cdPays",
        "adrCodeDept": "cdDepartement",
        "adrCodeCommune": "cdCommune",
    }
    return {q: str(adresse[a]) for q, a in wanted.items() if isinstance(adresse.get(a), str)}


@pytest.mark.parametrize("operation_id", R2P_OPERATIONS)
def test_r2p(conformance: Conformance, operation_id: str) -> None:
    op = _provider_operation(conformance.provider_r2p, operation_id)
    checker = _checker(operation_id, op, "r2p")
    by_spi = _provider_operation(conformance.provider_r2p, "RechercheParSPI")
    for persona in PERSONAS:
        if operation_id == "RechercheParSPI":
            r = conformance.call(_fill(by_spi.path, {"spi": persona.spi}))
            checker.check(r, persona.key, None)
            continue
        person = conformance.persons.get(persona.spi)
        if person is None:  # test_every_provider_operation_is_called says so
            continue
        query = etat_civil(person)
        checker.check(conformance.call(op.path, query), persona.key, None)
        if operation_id == "RechercheParCriteres":
            # The address filters narrow the search: the person's own address still finds them.
            found = conformance.call(_fill(by_spi.path, {"spi": persona.spi}))
            filters = address_filters(found.json()) if found.status_code == 200 else {}
            if filters:
                checker.check(conformance.call(op.path, query | filters), persona.key, None)
    checker.finish()


def test_every_provider_operation_is_called(conformance: Conformance) -> None:
    """A path the provider adds to its documents is noticed here, not silently skipped."""
    ip = {o.operation_id for o in conformance.provider_ip.operations}
    r2p = {o.operation_id for o in conformance.provider_r2p.operations}
    assert ip == set(SPI_OPERATIONS) | set(FC_OPERATIONS)
    assert r2p == set(R2P_OPERATIONS)
    missing = [p.key for p in PERSONAS if p.spi not in conformance.persons]
    assert not missing, f"personas without a person in the sandbox store: {missing}"

"""A client written against the provider's documents works against guichet: every operation of
API Impôt Particulier (by SPI and in FranceConnect mode), the convention's OS1–OS9 contract,
R2P and FICOBA (every search type, for every persona of the bank-accounts file, refusals
included), called through the in-process gateway for every persona and granted year, each
answer checked against the provider's document (strict: OpenAPI 3.0 semantics, no property it
does not define) and against guichet's published document.

The provider's documents come from ``GUICHET_PROVIDER_CONTRACTS`` (``tests/support/contracts``);
without them this module is skipped. Each test collects every deviation of its operation and
fails once, grouped by kind, with the personas and years each was seen for.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select
from starlette.types import ASGIApp

from guichet.catalog.products import FICOBA_SEARCH_SCOPES, PRODUCTS, YEAR_SCOPES
from guichet.db import transaction
from guichet.federation.checktoken import HttpFederationCheck
from guichet.federation.clients import RegisteredClient, register_client
from guichet.federation.models import ClientKind
from guichet.federation.scopes import DATA_SCOPES as FEDERATION_DATA_SCOPES
from guichet.federation.server import FederationDeps
from guichet.federation_web.app import build_federation_app
from guichet.records.ficoba import (
    NATURE_COFFRE,
    QUALITES_TITULAIRE,
    FicobaCompte,
    FicobaDetention,
    FicobaPersonneMorale,
    FicobaPersonnePhysique,
)
from guichet.records.models import Person
from guichet.sandbox import personas as ir_personas
from guichet.sandbox.ficoba import (
    GARNIER_ANNECY,
    GARNIER_SIEGE,
    GARNIER_SIREN,
    IBAN_BONNET,
    IBAN_FOURNIER,
    IBAN_GARNIER_SIEGE,
    IBAN_LEGRAND_LIVRET,
    IBAN_MARTIN,
    IBAN_MARTIN_CLOSED,
    NOTAIRE_SIRET,
    TILLEULS_SIRET,
    UNKNOWN_SIREN,
)
from guichet.sandbox.ficoba import PERSONAS as FICOBA_PERSONAS
from guichet.sandbox.household import Declarant
from guichet.sandbox.personas import PERSONA_SPIS, PERSONAS, Persona
from tests.conftest import BACKENDS
from tests.support.contracts import (
    ADDITION,
    FICOBA,
    IMPOT_PARTICULIER,
    JSON_MEDIA,
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
from tests.unit.apis.ficoba.support import call as ficoba_call
from tests.unit.apis.ficoba.support import closed_now as ficoba_closed_now
from tests.unit.apis.ficoba.support import ficoba_partner
from tests.unit.apis.ficoba.support import open_now as ficoba_open_now
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
# Everything the sandbox lets a partner be granted for Impôt Particulier and R2P: every data
# scope of the two products, every year, the three access modes, every resource scope
# (``make_partner``'s default). FICOBA has its own partner (``ficoba`` below).
ALL_DATA_SCOPES = tuple(
    sorted(frozenset().union(*(PRODUCTS[k].data_scopes for k in ("impot_particulier", "r2p"))))
)
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


# --- API FICOBA -------------------------------------------------------------------------------
#
# Every persona of the bank-accounts file (guichet.sandbox.ficoba.PERSONAS: the Impôt
# Particulier personas, three persons without SPI, the legal persons) searched by every
# search type of the provider's document, with criteria read from the store itself (so a
# persona's whole état civil, birth place, address, accounts and establishments are used),
# plus the unknowns (no person, no account) and invalid requests. Each answer is checked
# against the provider's document (strict) and guichet's; refusals against guichet's
# ``ErreurGuichet`` (the provider's ``ReponseErreur`` plus marked additions).

# The provider's operations [api-ficoba.json], by operationId, and their paths.
FICOBA_OPERATIONS = {
    "getInfo": "/etatSante",
    "rechercherCompteParNumCpte": "/comptes/numCpte",
    "rechercherCompteParSiretSiren": "/comptes/siretSiren",
    "rechercherComptesSpi": "/comptes/spi",
    "rechercherComptesPersonnePhysique": "/comptes/perPhy",
    "rechercherComptesPerPro": "/comptes/perPro",
    "rechercherMultiDetention": "/comptes/multiDet",
    "rechercherCompteParNumCpte_1": "/comptes/verifIban",
}
FICOBA_STORE = "sandbox"
# Valid identifiers nobody holds: the "no answer" outcomes.
UNKNOWN_SPI = "3000000020269"
UNKNOWN_IBAN = "FR7699101000101234567890108"
DEMANDE = {
    "dateDemande": "2026-01-15",
    "motif": "Recette de conformité",
    "siretDemandeur": "21690123100011",
    "justification": "Dossier de test",
}


@dataclass(frozen=True)
class FicobaPerson:
    """A natural person of the file, as the store holds them (criteria are built from it)."""

    key: str  # the SPI, or the name for the persons without one
    row: FicobaPersonnePhysique
    ibans: tuple[str, ...]  # of the accounts they hold or co-hold
    proxy_ibans: tuple[str, ...]  # of the accounts they have another capacity on


@dataclass(frozen=True)
class FicobaCompany:
    key: str  # the SIRET
    row: FicobaPersonneMorale
    ibans: tuple[str, ...]


@dataclass
class Ficoba:
    """The conformance world's FICOBA partner, its token and the personas' store rows."""

    world: World
    partner: Partner
    token: str
    provider: ApiDocument
    persons: list[FicobaPerson]
    companies: list[FicobaCompany]

    def post(self, path: str, body: Any, **options: Any) -> httpx.Response:
        options.setdefault("token", self.token)
        return ficoba_call(self.world, path, body, partner=self.partner, **options)

    def search(self, path: str, criteres: Any, **options: Any) -> httpx.Response:
        return self.post(path, {**DEMANDE, "criteresRecherche": criteres}, **options)


def _holdings(session: Any, *, natural: bool, ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    """(qualité, IBAN) of each person's accounts (safe-deposit boxes have no IBAN)."""
    column = FicobaDetention.personne_physique_id if natural else FicobaDetention.personne_morale_id
    rows = session.execute(
        select(column, FicobaDetention.qualite, FicobaCompte.iban)
        .join(
            FicobaCompte,
            (FicobaCompte.id == FicobaDetention.compte_id)
            & (FicobaCompte.store == FicobaDetention.store),
        )
        .where(FicobaDetention.store == FICOBA_STORE, column.in_(ids))
        .order_by(FicobaCompte.id)
    ).all()
    out: dict[int, list[tuple[str, str]]] = {i: [] for i in ids}
    for pid, qualite, iban in rows:
        if iban is not None:
            out[pid].append((qualite, iban))
    return out


def _ficoba_personas(session: Any) -> tuple[list[FicobaPerson], list[FicobaCompany]]:
    """The natural persons of the personas (by SPI, and those without one) and the legal
    persons of the personas (SIREN 90000…)."""
    spis = set(PERSONA_SPIS) | {p.identifiant for p in FICOBA_PERSONAS}
    people = session.scalars(
        select(FicobaPersonnePhysique)
        .where(
            FicobaPersonnePhysique.store == FICOBA_STORE,
            FicobaPersonnePhysique.spi.in_(spis) | FicobaPersonnePhysique.spi.is_(None),
        )
        .order_by(FicobaPersonnePhysique.id)
    ).all()
    held = _holdings(session, natural=True, ids=[p.id for p in people])
    persons = [
        FicobaPerson(
            p.spi or f"{p.nom_naissance} {p.prenoms}",
            p,
            tuple(dict.fromkeys(i for q, i in held[p.id] if q in QUALITES_TITULAIRE)),
            tuple(dict.fromkeys(i for q, i in held[p.id] if q not in QUALITES_TITULAIRE)),
        )
        for p in people
    ]
    rows = session.scalars(
        select(FicobaPersonneMorale)
        .where(
            FicobaPersonneMorale.store == FICOBA_STORE,
            FicobaPersonneMorale.siren.like("90000%"),
        )
        .order_by(FicobaPersonneMorale.id)
    ).all()
    owned = _holdings(session, natural=False, ids=[r.id for r in rows])
    companies = [
        FicobaCompany(r.siret, r, tuple(dict.fromkeys(i for _q, i in owned[r.id]))) for r in rows
    ]
    session.expunge_all()
    return persons, companies


@pytest.fixture(scope="module")
def ficoba(conformance: Conformance) -> Ficoba:
    world = conformance.world
    provider = provider_document(FICOBA, contracts_folder())
    ficoba_open_now(world)
    partner = ficoba_partner(world, quotas={"ficoba": 100_000})
    with world.runtime.session_factory() as session:
        persons, companies = _ficoba_personas(session)
    return Ficoba(world, partner, world.token(partner), provider, persons, companies)


# --- criteria from the store ------------------------------------------------------------------


def _birth(row: FicobaPersonnePhysique, suffix: str = "") -> dict[str, str]:
    born = row.date_naissance
    return {
        f"anneeNaissance{suffix}": f"{born.year:04d}",
        f"moisNaissance{suffix}": f"{born.month:02d}",
        f"jourNaissance{suffix}": f"{born.day:02d}",
    }


def etat_civil_titulaire(row: FicobaPersonnePhysique) -> dict[str, str]:
    """The provider's ``EtatCivilTitulaire`` of a person: name, first first name, sex, birth."""
    return {
        "nom": row.nom_naissance,
        "prenoms": row.prenoms.split()[0],
        "sexe": row.sexe,
        **_birth(row),
    }


def lieu_naissance(row: FicobaPersonnePhysique) -> dict[str, str]:
    place = {"codePaysNaissance": row.code_pays_naissance}
    if row.code_departement_naissance:
        place["codeDepartementNaissance"] = row.code_departement_naissance
    if row.code_commune_naissance:
        place["codeCommuneNaissance"] = row.code_commune_naissance
    return place


def domiciliation(row: FicobaPersonnePhysique | FicobaPersonneMorale) -> dict[str, str]:
    values = {
        "codePays": row.adr_code_pays,
        "codeDepartement": row.adr_code_departement,
        "codeCommune": row.adr_code_commune,
        "codeNatureVoie": row.adr_nature_voie,
        "libelleVoie": row.adr_libelle_voie,
        "numeroVoie": row.adr_numero_voie,
        "indiceRepetition": row.adr_indice_repetition,
        "codePostal": row.adr_code_postal,
    }
    return {k: v for k, v in values.items() if v}


def natural_searches(person: FicobaPerson) -> Iterator[tuple[str, dict[str, Any]]]:
    """The ``/comptes/perPhy`` criteria a partner would send for this person."""
    row = person.row
    name = {"nom": row.nom_naissance, "prenoms": row.prenoms}
    yield "name", {"etatCivil": name}
    yield "exact", {"etatCivil": {**name, "sexe": row.sexe, **_birth(row)}}
    yield (
        "place and address",
        {
            "etatCivil": {**name, **_birth(row)},
            "lieuNaissance": lieu_naissance(row),
            "domiciliation": domiciliation(row),
        },
    )
    yield (
        "range",
        {
            "etatCivil": {
                "nom": row.nom_naissance.lower(),
                "anneeNaissanceDebut": f"{row.date_naissance.year - 1:04d}",
                "anneeNaissanceFin": f"{row.date_naissance.year + 1:04d}",
            }
        },
    )
    if row.nom_usage:
        yield "usage name", {"etatCivil": {"nom": row.nom_usage, "prenoms": row.prenoms}}


def legal_searches(company: FicobaCompany) -> Iterator[tuple[str, dict[str, Any]]]:
    row = company.row
    yield "raison sociale", {"designation": {"raisonSociale": row.raison_sociale}}
    if row.sigle:
        yield "sigle", {"designation": {"sigle": row.sigle}}
    if row.enseigne:
        yield "enseigne", {"designation": {"enseigne": row.enseigne.lower()}}
    yield (
        "category and address",
        {
            "designation": {
                "raisonSociale": row.raison_sociale,
                "codeCategorieJuridique": row.categorie_juridique[:2],
            },
            "domiciliation": domiciliation(row),
        },
    )


# --- checking one FICOBA answer ---------------------------------------------------------------


@dataclass
class FicobaChecker:
    """Checks the answers of one FICOBA operation and collects what deviates: a 2xx against
    the provider's schema (strict) and guichet's; a refusal against guichet's document (the
    provider documents the 400 of each search without a body, and no other refusal but the
    health check's 503, whose body it describes)."""

    name: str
    provider: Operation
    guichet: ApiDocument | None
    devs: Deviations = field(default_factory=Deviations)
    served: int = 0
    outcomes: dict[str, set[str]] = field(default_factory=dict)

    def check(self, r: httpx.Response, persona: str, expected: int = 200) -> Any:
        self.devs.calls += 1
        request = f"{r.request.method} {r.request.url.raw_path.decode()}"

        def add(check: str, message: str, path: str = "") -> None:
            self.devs.add(Deviation(self.name, check, path, message, persona, None, request))

        body = _json_body(r, add)
        status = r.status_code
        if status != expected:
            shown = body.get("message") if isinstance(body, dict) else r.text[:120]
            add("status", f"{status} where {expected} was expected: {shown}")
        g_op = None
        if self.guichet is not None:
            g_op = self.guichet.find(r.request.method, r.request.url.path)
            if g_op is None:
                add("guichet document", f"no operation of guichet's document for {request}")
        if media_type_of(r.headers.get("content-type")) != JSON_MEDIA:
            add("media type", f"Content-Type {r.headers.get('content-type')!r} for a {status}")
        documented = self.provider.response(status)
        if 200 <= status < 300:
            self.served += 1
            self._outcome(body)
        if documented is not None and (200 <= status < 300 or documented.content):
            _conforms(r, body, documented, "provider", True, add)
        elif documented is None and 200 <= status < 300:
            add("status", f"{status} is not a status the provider documents")
        if g_op is None:
            return body
        g_documented = g_op.response(status)
        if g_documented is None:
            add("status", f"{status} is not documented in guichet's document")
            return body
        if documented is None and g_documented.raw.get(ADDITION) is not True:
            add("guichet document", f"{status} is guichet's, yet not marked {ADDITION}")
        _conforms(r, body, g_documented, "guichet document", False, add)
        return body

    def _outcome(self, body: Any) -> None:
        """What kind of answer it was: the number of answers, the informative message."""
        if not isinstance(body, dict):
            return
        count = body.get("nombreReponses")
        message = body.get("messageInformatif") or {}
        kind = "none" if count == "0" else "some" if count is not None else "health"
        self.outcomes.setdefault(kind, set()).add(str(message.get("code", "")))

    def finish(self, *outcomes: str, messages: frozenset[str] = frozenset()) -> None:
        """Fails with every deviation; ``outcomes`` the kinds of answer that must have been
        seen ("some", "none"), ``messages`` the ``messageInformatif`` codes."""
        for kind in outcomes:
            if kind not in self.outcomes:
                self.devs.add(
                    Deviation(self.name, "coverage", "", f"no answer of kind {kind!r} was checked")
                )
        seen = set().union(*self.outcomes.values()) if self.outcomes else set()
        for code in sorted(messages - seen):
            self.devs.add(Deviation(self.name, "coverage", "", f"no answer said {code!r}"))
        self.devs.check()


def _ficoba_checker(f: Ficoba, operation_id: str) -> FicobaChecker:
    op = _provider_operation(f.provider, operation_id)
    devs = Deviations()
    return FicobaChecker(operation_id, op, _guichet("ficoba", devs, operation_id), devs)


def _invalid(f: Ficoba, checker: FicobaChecker, path: str, bodies: list[Any]) -> None:
    """Refusals: each body answered 400, then the media type (415), the size (413), a body
    that is not JSON (400), a missing X-Request-ID (400) and a missing token (401)."""
    for body in bodies:
        checker.check(f.post(path, body), f"invalid {json.dumps(body)[:60]}", 400)
    checker.check(
        f.post(path, None, content=b"iban=FR76", content_type="text/plain"), "text/plain", 415
    )
    big = json.dumps({"criteresRecherche": {"iban": "X" * 20_000}}).encode()  # 16 KiB at most
    checker.check(f.post(path, None, content=big), "oversized", 413)
    checker.check(f.post(path, None, content=b'{"criteresRecherche": '), "not JSON", 400)
    checker.check(f.search(path, {}, request_id=None), "no X-Request-ID", 400)
    r = ficoba_call(f.world, path, {"criteresRecherche": {}}, partner=None)
    checker.check(r, "no token", 401)


def test_ficoba_health_check(ficoba: Ficoba) -> None:
    checker = _ficoba_checker(ficoba, "getInfo")
    r = ficoba.post("/etatSante", None, method="GET", content_type=None)
    body = checker.check(r, "-")
    assert body == {"descriptif": "L'API est opérationnelle"}
    # The provider's spelling of the header on this operation, X-request-ID, is the same.
    r = ficoba.post(
        "/etatSante",
        None,
        method="GET",
        content_type=None,
        request_id=None,
        headers={"X-request-ID": "sante-1"},
    )
    checker.check(r, "X-request-ID")
    checker.check(
        ficoba.post("/etatSante", None, method="GET", content_type=None, request_id=None),
        "no X-request-ID",
        400,
    )
    checker.finish("health")


def test_ficoba_health_check_in_the_closed_hour(ficoba: Ficoba) -> None:
    """The daily unavailable hour: the provider's 503 and its ``ResultatErreurApiSante``."""
    world = ficoba.world
    before = world.clock.now()
    checker = _ficoba_checker(ficoba, "getInfo")
    try:
        ficoba_closed_now(world)
        token = world.token(ficoba.partner)
        r = ficoba.post("/etatSante", None, method="GET", content_type=None, token=token)
        checker.check(r, "closed hour", 503)
        assert r.headers["retry-after"].isdigit()
        r = ficoba.search("/comptes/spi", {"numeroSPI": ir_personas.SINGLE.spi}, token=token)
        checker_spi = _ficoba_checker(ficoba, "rechercherComptesSpi")
        checker_spi.check(r, "closed hour", 503)
        checker_spi.devs.check()
    finally:
        world.clock.set(before)
    checker.devs.check()


def test_ficoba_refuses_a_body_beyond_the_gateways_limit_in_its_own_shape(ficoba: Ficoba) -> None:
    checker = _ficoba_checker(ficoba, "rechercherComptesSpi")
    huge = json.dumps({"criteresRecherche": {"numeroSPI": "1" * 70_000}}).encode()
    checker.check(ficoba.post("/comptes/spi", None, content=huge), "beyond 64 KiB", 413)
    checker.devs.check()


def test_ficoba_by_spi(ficoba: Ficoba) -> None:
    checker = _ficoba_checker(ficoba, "rechercherComptesSpi")
    path = FICOBA_OPERATIONS["rechercherComptesSpi"]
    for spi in sorted(set(PERSONA_SPIS) | {UNKNOWN_SPI}):
        checker.check(ficoba.search(path, {"numeroSPI": spi}), spi)
    _invalid(ficoba, checker, path, [{}, {"criteresRecherche": {"numeroSPI": "3000000001251"}}])
    checker.finish("some", "none", messages=frozenset({"aucune_reponse"}))


def test_ficoba_natural_persons(ficoba: Ficoba) -> None:
    checker = _ficoba_checker(ficoba, "rechercherComptesPersonnePhysique")
    path = FICOBA_OPERATIONS["rechercherComptesPersonnePhysique"]
    for person in ficoba.persons:
        for what, criteres in natural_searches(person):
            checker.check(ficoba.search(path, criteres), f"{person.key} ({what})")
    nobody = {"etatCivil": {"nom": "Zyxwvutsrq", "prenoms": "Personne"}}
    checker.check(ficoba.search(path, nobody), "nobody")
    invalid = [
        {"criteresRecherche": {"etatCivil": {"prenoms": "Jean"}}},
        {"criteresRecherche": {"etatCivil": {"nom": "Dupont", "moisNaissance": "13"}}},
        {"criteresRecherche": {"etatCivil": {"nom": 12}}},
    ]
    _invalid(ficoba, checker, path, invalid)
    checker.finish("some", "none")


def test_ficoba_legal_persons(ficoba: Ficoba) -> None:
    checker = _ficoba_checker(ficoba, "rechercherComptesPerPro")
    path = FICOBA_OPERATIONS["rechercherComptesPerPro"]
    for company in ficoba.companies:
        for what, criteres in legal_searches(company):
            checker.check(ficoba.search(path, criteres), f"{company.key} ({what})")
    nobody = {"designation": {"raisonSociale": "Zyxwvut Qqqq Sarl"}}
    checker.check(ficoba.search(path, nobody), "nobody")
    invalid = [
        {"criteresRecherche": {"designation": {"codeCategorieJuridique": "54"}}},
        {
            "criteresRecherche": {
                "designation": {"raisonSociale": "X", "codeCategorieJuridique": "543"}
            }
        },
    ]
    _invalid(ficoba, checker, path, invalid)
    checker.finish("some", "none")


def test_ficoba_by_siret_siren(ficoba: Ficoba) -> None:
    checker = _ficoba_checker(ficoba, "rechercherCompteParSiretSiren")
    path = FICOBA_OPERATIONS["rechercherCompteParSiretSiren"]
    for company in ficoba.companies:
        row = company.row
        checker.check(ficoba.search(path, {"siret": row.siret}), company.key)
        checker.check(ficoba.search(path, {"siren": row.siren}), f"{company.key} (SIREN)")
        both = {"siret": row.siret, "siren": row.siren}
        checker.check(ficoba.search(path, both), f"{company.key} (both)")
    checker.check(ficoba.search(path, {"siren": UNKNOWN_SIREN}), "unknown SIREN")
    invalid = [
        {"criteresRecherche": {}},
        {"criteresRecherche": {"siren": "900000018"}},
        {"criteresRecherche": {"siret": GARNIER_SIEGE, "siren": UNKNOWN_SIREN}},
    ]
    _invalid(ficoba, checker, path, invalid)
    checker.finish("some", "none")


def test_ficoba_by_account(ficoba: Ficoba) -> None:
    checker = _ficoba_checker(ficoba, "rechercherCompteParNumCpte")
    path = FICOBA_OPERATIONS["rechercherCompteParNumCpte"]
    ibans = {i for p in ficoba.persons for i in p.ibans + p.proxy_ibans}
    ibans |= {i for c in ficoba.companies for i in c.ibans}
    for iban in sorted(ibans):
        checker.check(ficoba.search(path, {"iban": iban}), iban)
    spaced = " ".join(IBAN_MARTIN[i : i + 4] for i in range(0, len(IBAN_MARTIN), 4)).lower()
    checker.check(ficoba.search(path, {"iban": spaced}), "spaced, lower case")
    checker.check(ficoba.search(path, {"iban": UNKNOWN_IBAN}), "unknown IBAN")
    invalid = [{"criteresRecherche": {"iban": IBAN_MARTIN[:-1] + "0"}}, {"criteresRecherche": {}}]
    _invalid(ficoba, checker, path, invalid)
    checker.finish("some", "none")


def test_ficoba_iban_checks(ficoba: Ficoba) -> None:
    """Each holder's IBANs with their own état civil (concordant), with someone else's (not),
    a proxy's (not a holder), and the legal persons' with their designation, SIRET, SIREN."""
    checker = _ficoba_checker(ficoba, "rechercherCompteParNumCpte_1")
    path = FICOBA_OPERATIONS["rechercherCompteParNumCpte_1"]
    persons = ficoba.persons
    for index, person in enumerate(persons):
        other = persons[(index + 1) % len(persons)]
        for iban in person.ibans:
            mine = {"recherchePP": "O", "iban": iban, "etatCivil": etat_civil_titulaire(person.row)}
            checker.check(ficoba.search(path, mine), f"{person.key} {iban}")
            with_place = {**mine, "lieuNaissance": lieu_naissance(person.row)}
            checker.check(ficoba.search(path, with_place), f"{person.key} {iban} (place)")
            theirs = {**mine, "etatCivil": etat_civil_titulaire(other.row)}
            checker.check(ficoba.search(path, theirs), f"{other.key} with {iban}")
        for iban in person.proxy_ibans:
            proxy = {
                "recherchePP": "O",
                "iban": iban,
                "etatCivil": etat_civil_titulaire(person.row),
            }
            checker.check(ficoba.search(path, proxy), f"{person.key} {iban} (proxy)")
    for company in ficoba.companies:
        row = company.row
        for iban in company.ibans:
            pm = {
                "recherchePM": "O",
                "iban": iban,
                "designation": {"raisonSociale": row.raison_sociale},
            }
            checker.check(ficoba.search(path, pm), f"{company.key} {iban}")
            siret = {"rechercheSirenSiret": "O", "iban": iban, "siret": row.siret}
            checker.check(ficoba.search(path, siret), f"{company.key} {iban} (SIRET)")
            siren = {"rechercheSirenSiret": "O", "iban": iban, "siren": row.siren}
            checker.check(ficoba.search(path, siren), f"{company.key} {iban} (SIREN)")
    unknown = {"recherchePP": "O", "iban": UNKNOWN_IBAN, "etatCivil": {"nom": "Martin"}}
    checker.check(ficoba.search(path, unknown), "unknown IBAN")
    invalid = [
        {"criteresRecherche": {"iban": IBAN_MARTIN, "etatCivil": {"nom": "Martin"}}},
        {"criteresRecherche": {"recherchePP": "O", "recherchePM": "O", "iban": IBAN_MARTIN}},
        {"criteresRecherche": {"recherchePP": "X", "iban": IBAN_MARTIN}},
    ]
    _invalid(ficoba, checker, path, invalid)
    outcomes = frozenset({"titulaire_concordant", "titulaire_non_concordant", "iban_inconnu"})
    checker.finish("some", "none", messages=outcomes)


def test_ficoba_multi_holding(ficoba: Ficoba) -> None:
    checker = _ficoba_checker(ficoba, "rechercherMultiDetention")
    path = FICOBA_OPERATIONS["rechercherMultiDetention"]
    for person in ficoba.persons:
        phy = {"etatCivil": etat_civil_titulaire(person.row)}
        base = {"accordClient": "O", "recherchePP": "O", "criteresRecherchePhy": phy}
        checker.check(ficoba.search(path, base), person.key)
        checker.check(ficoba.search(path, base | {"codeNatureCompte": "3"}), f"{person.key} (3)")
    for company in ficoba.companies:
        row = company.row
        pro = {"designation": {"raisonSociale": row.raison_sociale}}
        pm = {"accordClient": "O", "recherchePM": "O", "criteresRecherchePro": pro}
        checker.check(ficoba.search(path, pm | {"codeNatureCompte": "3"}), company.key)
        checker.check(ficoba.search(path, pm), f"{company.key} (every regulated nature)")
        siret = {"accordClient": "O", "rechercheSIRENSIRET": "O"}
        checker.check(
            ficoba.search(path, siret | {"criteresSiretSiren": {"siret": row.siret}}),
            f"{company.key} (SIRET)",
        )
        checker.check(
            ficoba.search(path, siret | {"criteresSiretSiren": {"siren": row.siren}}),
            f"{company.key} (SIREN)",
        )
    invalid = [
        {"criteresRecherche": {"accordClient": "O"}},
        {"criteresRecherche": {"recherchePP": "O", "codeNatureCompte": "99"}},
        {"criteresRecherche": {"recherchePP": "O", "criteresRecherchePhy": {"etatCivil": {}}}},
    ]
    _invalid(ficoba, checker, path, invalid)
    checker.finish("some", "none")


def test_ficoba_refuses_a_search_type_not_granted_in_its_documented_shape(
    ficoba: Ficoba,
) -> None:
    """The convention habilitates per search type [002 §4]: a partner habilitated for one
    type of each shared operation is answered 403 (guichet's addition, a ``ReponseErreur``)
    for the others, ``verifIban`` and ``multiDet`` by the type their indicator chooses."""
    world = ficoba.world
    one_each = ("personne_physique", "verification_iban_siret", "multi_detention_siret")
    partner = ficoba_partner(world, data_scopes=tuple(FICOBA_SEARCH_SCOPES[k] for k in one_each))
    token = world.token(partner)
    owner = next(c for c in ficoba.companies if c.ibans)
    company, iban = owner.row, owner.ibans[0]
    person = ficoba.persons[0].row
    cases = [
        ("rechercherComptesPerPro", {"designation": {"raisonSociale": company.raison_sociale}}),
        ("rechercherComptesSpi", {"numeroSPI": ir_personas.SINGLE.spi}),
        (
            "rechercherCompteParNumCpte_1",
            {"recherchePP": "O", "iban": iban, "etatCivil": etat_civil_titulaire(person)},
        ),
        (
            "rechercherCompteParNumCpte_1",
            {"recherchePM": "O", "iban": iban, "designation": {"raisonSociale": "X"}},
        ),
        (
            "rechercherMultiDetention",
            {"recherchePP": "O", "criteresRecherchePhy": {"etatCivil": {"nom": "Martin"}}},
        ),
        (
            "rechercherMultiDetention",
            {"recherchePM": "O", "criteresRecherchePro": {"designation": {"raisonSociale": "X"}}},
        ),
    ]
    for operation_id, criteres in cases:
        checker = _ficoba_checker(ficoba, operation_id)
        r = ficoba_call(
            world,
            FICOBA_OPERATIONS[operation_id],
            {**DEMANDE, "criteresRecherche": criteres},
            partner=partner,
            token=token,
        )
        body = checker.check(r, f"{operation_id} not granted", 403)
        assert body["code"] == "search_type_not_granted", body
        checker.finish()
    granted = _ficoba_checker(ficoba, "rechercherCompteParNumCpte_1")
    siret = {"rechercheSirenSiret": "O", "iban": iban, "siret": company.siret}
    granted.check(
        ficoba_call(
            world,
            FICOBA_OPERATIONS["rechercherCompteParNumCpte_1"],
            {**DEMANDE, "criteresRecherche": siret},
            partner=partner,
            token=token,
        ),
        "verification_iban_siret granted",
    )
    granted.finish()


def test_every_ficoba_operation_is_called(ficoba: Ficoba) -> None:
    """A search the provider adds to its document is noticed here; every FICOBA persona is
    in the store."""
    provider = {o.operation_id: o.path for o in ficoba.provider.operations}
    assert provider == {k: ficoba.provider.base_path + v for k, v in FICOBA_OPERATIONS.items()}
    spis = {p.row.spi for p in ficoba.persons}
    sirets = {c.row.siret for c in ficoba.companies}
    for persona in FICOBA_PERSONAS:
        if not persona.identifiant or persona.identifiant == ir_personas.NO_TAX.spi:
            continue  # Hans MULLER has no SPI; Chloé BLANC holds nothing
        found = persona.identifiant in spis or persona.identifiant in sirets
        found = found or any(s.startswith(persona.identifiant) for s in sirets)
        assert found, persona.key
    assert any(p.row.spi is None for p in ficoba.persons)


def _accounts(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The accounts of every person of a person-search answer."""
    return [c for r in answer.get("reponses") or [] for c in r.get("comptes") or []]


def _by_iban(accounts: list[dict[str, Any]], iban: str) -> dict[str, Any]:
    found = [c for c in accounts if c["caracteristiqueCompte"].get("iban") == iban]
    assert len(found) == 1, iban
    return found[0]


def _qualites(account: Mapping[str, Any]) -> dict[str, str]:
    """Each person on an account (SPI, SIRET or name) → their ``codeQualite``."""
    out = {}
    for holder in account["ayantsDroits"]:
        person = holder.get("personnePhysique") or holder.get("personneMorale") or {}
        who = str(person.get("numeroSpi") or person.get("siret") or person.get("nomNaissance"))
        out[who] = holder["codeQualite"]
    return out


def test_ficoba_personas_answer_as_docs_sandbox_says(ficoba: Ficoba) -> None:
    """The outcomes docs/sandbox.md promises, one per search type and kind of answer: no
    account, closed account, proxy, deceased holder, safe-deposit box, homonyms ranked by
    scoreAppariement, non-resident, an IBAN that belongs to someone else…"""
    s = ficoba.search
    ir = ir_personas

    def ok(path: str, criteres: Any) -> dict[str, Any]:
        r = s(path, criteres)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    # SPI: accounts open and closed; nothing for Chloé BLANC; a proxy's; a deceased holder.
    martin = ok("/comptes/spi", {"numeroSPI": ir.SINGLE.spi})
    assert martin["nombreReponses"] == "1"
    assert martin["reponses"][0]["nombreComptes"] == "4"
    accounts = _accounts(martin)
    assert "dateCloture" not in _by_iban(accounts, IBAN_MARTIN)["caracteristiqueCompte"]
    assert "dateCloture" in _by_iban(accounts, IBAN_MARTIN_CLOSED)["caracteristiqueCompte"]
    blanc = ok("/comptes/spi", {"numeroSPI": ir.NO_TAX.spi})
    assert blanc["nombreReponses"] == "0"
    assert blanc["messageInformatif"]["code"] == "aucune_reponse"
    assert "reponses" not in blanc
    leroy = ok("/comptes/spi", {"numeroSPI": ir.SHARED_30262.spi})
    assert _qualites(_by_iban(_accounts(leroy), IBAN_BONNET))[ir.SHARED_30262.spi] == "MAN"
    legrand = ok("/comptes/spi", {"numeroSPI": ir.DECEASED.spi})
    assert "dateDeces" in legrand["reponses"][0]["personneRecherche"]
    livret = _by_iban(_accounts(legrand), IBAN_LEGRAND_LIVRET)
    assert livret["caracteristiqueCompte"]["succession"] == "O"
    assert _qualites(livret)[ir.WIDOW.spi] == "AYD"
    assert _qualites(livret)[NOTAIRE_SIRET] == "MAN"
    garnier = ok("/comptes/spi", {"numeroSPI": ir.FULL_1.spi})
    boxes = [
        c["caracteristiqueCompte"]
        for c in _accounts(garnier)
        if c["caracteristiqueCompte"]["nature"]["codeNature"] == NATURE_COFFRE
    ]
    assert len(boxes) == 1
    assert boxes[0]["formatCompte"] == "INTERNE"
    assert "iban" not in boxes[0]

    # Natural persons: normalised names, homonyms ranked, told apart by the address.
    lefevre = ok(
        "/comptes/perPhy",
        {"etatCivil": {"nom": "le-fèvre", "prenoms": "sophie"} | _birth_of(ir.FAMILY)},
    )
    first = lefevre["reponses"][0]["personneRecherche"]
    assert (first["numeroSpi"], first["scoreAppariement"]) == (int(ir.FAMILY.spi), 100)
    homonyms = ok(
        "/comptes/perPhy",
        {"etatCivil": {"nom": "Dupont", "prenoms": "Jean", "anneeNaissance": "1975"}},
    )
    people = [r["personneRecherche"] for r in homonyms["reponses"]]
    scores = [p["scoreAppariement"] for p in people]
    assert scores == sorted(scores, reverse=True)
    assert {p.get("numeroSpi") for p in people[:2]} == {
        int(ir.HOMONYM_1.spi),
        int(ir.HOMONYM_2.spi),
    }
    assert scores[:2] == [100, 100]
    without_spi = {p["prenom"]: p["scoreAppariement"] for p in people if "numeroSpi" not in p}
    assert without_spi == {"JEAN-PIERRE": 80.56, "JEAN": 70.37}  # DUPONT, DUPOND
    apart = ok(
        "/comptes/perPhy",
        {
            "etatCivil": {"nom": "Dupont", "prenoms": "Jean", "anneeNaissance": "1975"},
            "domiciliation": {
                "codeDepartement": "75",
                "codeCommune": "111",
                "libelleVoie": "rue Oberkampf",
            },
        },
    )
    ranked = [r["personneRecherche"] for r in apart["reponses"]]
    assert [(p.get("numeroSpi"), p["scoreAppariement"]) for p in ranked[:2]] == [
        (int(ir.HOMONYM_1.spi), 98.41),
        (int(ir.HOMONYM_2.spi), 94.44),
    ]
    muller = ok("/comptes/perPhy", {"etatCivil": {"nom": "Muller", "prenoms": "Hans"}})
    hans = muller["reponses"][0]
    assert "numeroSpi" not in hans["personneRecherche"]
    assert hans["personneRecherche"]["adresse"]["codePaysResidence"] == "99109"
    assert hans["comptes"][0]["caracteristiqueCompte"]["resident"] == "N"

    # Accounts: closed, unknown.
    fournier = ok("/comptes/numCpte", {"iban": IBAN_FOURNIER})
    assert "dateCloture" in fournier["reponses"]["comptes"][0]["caracteristiqueCompte"]
    assert ok("/comptes/numCpte", {"iban": UNKNOWN_IBAN})["nombreReponses"] == "0"

    # Legal persons: two establishments of a SIREN; nobody for an unknown one; by sigle.
    assert ok("/comptes/siretSiren", {"siren": GARNIER_SIREN})["nombreReponses"] == "2"
    assert ok("/comptes/siretSiren", {"siren": UNKNOWN_SIREN})["nombreReponses"] == "0"
    gef = ok("/comptes/perPro", {"designation": {"sigle": "G.E.F."}})
    assert {r["personneRecherche"]["siret"] for r in gef["reponses"][:2]} == {
        GARNIER_SIEGE,
        GARNIER_ANNECY,
    }

    # IBAN checks: concordant, someone else's, a proxy's, unknown, a legal person's, a SIRET.
    def check(criteres: dict[str, Any]) -> tuple[str, str]:
        answer = ok("/comptes/verifIban", criteres)
        verification = answer["reponses"]["verificationCompte"]
        return verification["ibanExistant"], answer["messageInformatif"]["code"]

    lucie = {"nom": "Martin", "prenoms": "Lucie"} | _birth_of(ir.SINGLE)
    pp = {"recherchePP": "O", "iban": IBAN_MARTIN}
    assert check(pp | {"etatCivil": lucie}) == ("O", "titulaire_concordant")
    someone_else = {"nom": "Dupont", "prenoms": "Jean"}
    assert check(pp | {"etatCivil": someone_else}) == ("O", "titulaire_non_concordant")
    paul = {"recherchePP": "O", "iban": IBAN_BONNET, "etatCivil": {"nom": "Leroy"}}
    assert check(paul) == ("O", "titulaire_non_concordant")
    assert check(pp | {"iban": UNKNOWN_IBAN, "etatCivil": lucie}) == ("N", "iban_inconnu")
    pm = {"recherchePM": "O", "iban": IBAN_GARNIER_SIEGE}
    assert check(pm | {"designation": {"raisonSociale": "Garnier et fils"}})[1] == (
        "titulaire_concordant"
    )
    siret = {"rechercheSirenSiret": "O", "iban": IBAN_GARNIER_SIEGE}
    assert check(siret | {"siret": GARNIER_SIEGE})[1] == "titulaire_concordant"
    assert check(siret | {"siret": GARNIER_ANNECY})[1] == "titulaire_non_concordant"

    # Multi-holding: two open Livrets A; none for a closed one; a legal person's by SIRET.
    def multi(criteres: dict[str, Any]) -> int:
        answer = ok("/comptes/multiDet", {"accordClient": "O"} | criteres)
        assert answer["getnRep"] == answer["nombreReponses"]
        return int(answer["nombreReponses"])

    sophie = {"nom": "Lefevre", "prenoms": "Sophie"} | _birth_of(ir.FAMILY)
    livret_a = {"codeNatureCompte": "3", "recherchePP": "O"}
    assert multi(livret_a | {"criteresRecherchePhy": {"etatCivil": sophie}}) == 2
    hugo = {"nom": "Fournier", "prenoms": "Hugo"} | _birth_of(ir.NO_N1)
    assert multi(livret_a | {"criteresRecherchePhy": {"etatCivil": hugo}}) == 0
    tilleuls = {"codeNatureCompte": "3", "rechercheSIRENSIRET": "O"}
    assert multi(tilleuls | {"criteresSiretSiren": {"siret": TILLEULS_SIRET}}) == 2


def _birth_of(declarant: Declarant) -> dict[str, str]:
    born = declarant.naissance
    return {
        "anneeNaissance": f"{born.year:04d}",
        "moisNaissance": f"{born.month:02d}",
        "jourNaissance": f"{born.day:02d}",
    }

"""Migration 0010 empties the sandbox store (re-seeded in the new shapes at the next start)
and converts the production store's records to the provider's shapes in place."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from guichet.db import make_engine
from guichet.db.migrate import MIGRATIONS, alembic_config, upgrade
from guichet.records.importer import IfiLine, ImportLine
from guichet.records.ir_record import FactureLine, ThHeading
from tests.conftest import BACKENDS
from tests.support.postgres import PostgresServer

COUPLE_1, COUPLE_2 = "3999999915247", "3000000017266"  # DURAND, ROBERT ép. DURAND
SINGLE = "3999999930262"  # LEROY
UNKNOWN_1, UNKNOWN_2 = "3000000001250", "3000000002251"  # no person row
_SANDBOX = "3000000003252"

# Tables as they are at revision 0009 (not the models, which later revisions may change).
_person = sa.table(
    "person",
    *(
        sa.column(c)
        for c in (
            "store",
            "spi",
            "sexe",
            "nom_naissance",
            "nom_usage",
            "prenoms",
            "code_pays_naissance",
            "code_dept_naissance",
            "code_commune_naissance",
            "lieu_naissance",
            "communicable",
        )
    ),
    sa.column("date_naissance", sa.Date()),
    sa.column("adresse", sa.JSON()),
)
_ir = sa.table(
    "ir_situation",
    *(sa.column(c) for c in ("store", "spi", "annrev", "rang", "foyer")),
    sa.column("record", sa.JSON()),
    sa.column("facture", sa.JSON()),
)
_ifi = sa.table(
    "ifi_situation",
    *(sa.column(c) for c in ("store", "spi", "annrev", "foyer")),
    sa.column("record", sa.JSON()),
)
_th_avis = sa.table(
    "th_avis",
    *(sa.column(c) for c in ("store", "spi", "annee", "avis")),
    sa.column("record", sa.JSON()),
)
_th_local = sa.table(
    "th_local",
    *(
        sa.column(c)
        for c in (
            "store",
            "spi",
            "annee",
            "invariant",
            "avis",
            "nature_local",
            "affectation",
            "principal",
        )
    ),
)

# An old-shape record (before 0010): integer indicators, the form's ``case*`` boxes, nulls.
_OLD_SIT_PAR = {"caseP": 0, "caseF": 1, "caseS": 1, "caseW": 0, "caseL": 1, "caseT": 0}


def _old_record(**over: Any) -> dict[str, Any]:
    return {
        "rfr": None,
        "nbPart": 2.0,
        "sitFam": "M",
        "pac": {"nbPac": 0, "nbPacF": 0, "nbPacG": None},
        "nmNaiDec1": "DURAND",
        "nmUsaDec1": None,
        "prnmDec1": "PHILIPPE",
        "dateNaisDec1": {"jour": "08", "mois": "10", "annee": "1976"},
        "nmNaiDec2": "ROBERT",
        "nmUsaDec2": "DURAND",
        "prnmDec2": "NATHALIE",
        "dateNaisDec2": {"jour": "03", "mois": "03", "annee": "1977"},
        "aftDetail": {"complementAdresse": None, "voie": "15 RUE DE LA LIBERTE"},
        "sitParIso": None,
        "indDeficit": 1,
        "revenuBrutGlobal": None,
        "sitPart": None,
        "sitParDeclaree": _OLD_SIT_PAR,
        "indOptionImpotSepar": 0,
        "montTotIr": 1_200,
        "rev": {"tspr": [{"code": "1AJ", "valeur": "39000"}]},
    } | over


def _person_row(store: str, spi: str, nom: str, born: str) -> dict[str, Any]:
    return {
        "store": store,
        "spi": spi,
        "sexe": "M",
        "nom_naissance": nom,
        "nom_usage": None,
        "prenoms": "X",
        "date_naissance": dt.date.fromisoformat(born),
        "code_pays_naissance": "99100",
        "code_dept_naissance": None,
        "code_commune_naissance": None,
        "lieu_naissance": None,
        "adresse": {"voie": "1 rue"},
        "communicable": True,
    }


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"mig10_{os.getpid()}_{uuid.uuid4().hex[:8]}")


def _load(engine: sa.Engine) -> None:
    ir_row = {"annrev": 2025, "rang": 1, "facture": None}
    with engine.begin() as conn:
        conn.execute(
            _person.insert(),
            [
                _person_row("production", COUPLE_1, "DURAND", "1976-10-08"),
                _person_row("production", COUPLE_2, "Robert", "1977-03-03"),
                _person_row("production", SINGLE, "LEROY", "1985-01-15"),
                _person_row("sandbox", _SANDBOX, "PETIT", "1984-06-21"),
            ],
        )
        facture = [
            {"numLigne": 1, "codeLigne": "IMPNET", "libelleLigne": "Impôt", "colonne1": "1200"}
            | {"colonne2": None, "colonne3": None, "colonne4": None}
        ]
        single = _old_record(
            sitFam="C",
            nbPart=1.0,
            rfr=31_250,
            nmNaiDec1="LEROY",
            prnmDec1="PAUL",
            dateNaisDec1={"jour": "15", "mois": "01", "annee": "1985"},
            nmNaiDec2=None,
            nmUsaDec2=None,
            prnmDec2=None,
            dateNaisDec2=None,
            sitParIso="T",
            sitPart="T",
            sitParDeclaree={"caseT": 1},
        )
        conn.execute(
            _ir.insert(),
            [
                # A couple, stored once per declarant; the second row lists them the other way.
                {**ir_row, "store": "production", "spi": COUPLE_1, "foyer": "F-DURAND"}
                | {"record": _old_record(), "facture": facture},
                {**ir_row, "store": "production", "spi": COUPLE_2, "foyer": "F-DURAND"}
                | {"record": _old_record()},
                {**ir_row, "store": "production", "spi": SINGLE, "foyer": "F-LEROY"}
                | {"record": single, "annrev": 2024},
                # Nobody to match: the SPIs are left out rather than guessed.
                {**ir_row, "store": "production", "spi": UNKNOWN_1, "foyer": "F-X"}
                | {"record": _old_record()},
                {**ir_row, "store": "production", "spi": UNKNOWN_2, "foyer": "F-X"}
                | {"record": _old_record()},
                {**ir_row, "store": "sandbox", "spi": _SANDBOX, "foyer": "SBX"}
                | {"record": _old_record()},
            ],
        )
        old_ifi = {"indicateurIfiIsf": "O", "patrimoineNetTaxable": 1_500_000, "montantIfi": 3900}
        conn.execute(
            _ifi.insert(),
            [
                {"store": store, "spi": spi, "annrev": 2025, "foyer": "F", "record": old_ifi}
                for store, spi in (("production", COUPLE_1), ("sandbox", _SANDBOX))
            ],
        )
        heading = {"codeDsf": "210", "numVoie": "15", "btq": None, "libelleEdition2": None}
        conn.execute(
            _th_avis.insert(),
            [
                {"store": store, "spi": spi, "annee": 2025, "avis": "2025P1", "record": heading}
                for store, spi in (("production", COUPLE_1), ("sandbox", _SANDBOX))
            ],
        )
        conn.execute(
            _th_local.insert(),
            [
                {"store": store, "spi": spi, "annee": 2025, "invariant": "2310000001"}
                | {"avis": "2025P1", "nature_local": "MA", "affectation": "H", "principal": True}
                for store, spi in (("production", COUPLE_1), ("sandbox", _SANDBOX))
            ],
        )


def _records(engine: sa.Engine, table: sa.TableClause, *keys: str) -> dict[tuple[Any, ...], Any]:
    with engine.connect() as conn:
        return {
            (row.store, *(row._mapping[k] for k in keys)): row.record
            for row in conn.execute(sa.select(table))
        }


def test_sandbox_emptied_production_converted(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine, "0009")
    _load(engine)
    upgrade(engine)
    try:
        with engine.connect() as conn:
            for table in (_person, _ir, _ifi, _th_avis, _th_local):
                stores = {row.store for row in conn.execute(sa.select(table.c.store))}
                assert stores == {"production"}, table.name
            factures = {
                row.spi: row.facture
                for row in conn.execute(sa.select(_ir.c.spi, _ir.c.facture))
                if row.facture is not None
            }
        ir = _records(engine, _ir, "spi", "annrev")
        ifi = _records(engine, _ifi, "spi")
        th = _records(engine, _th_avis, "spi")
    finally:
        engine.dispose()

    couple = ir[("production", COUPLE_1, 2025)]
    assert ir[("production", COUPLE_2, 2025)] == couple
    assert couple == {
        # The four nullable values keep their null; every other null is gone.
        "rfr": None,
        "nbPart": 2.0,
        "sitFam": "M",
        "pac": {"nbPac": 0, "nbPacF": 0},
        "nmNaiDec1": "DURAND",
        "prnmDec1": "PHILIPPE",
        "dateNaisDec1": {"jour": "08", "mois": "10", "annee": "1976"},
        "nmNaiDec2": "ROBERT",
        "nmUsaDec2": "DURAND",
        "prnmDec2": "NATHALIE",
        "dateNaisDec2": {"jour": "03", "mois": "03", "annee": "1977"},
        "aftDetail": {"voie": "15 RUE DE LA LIBERTE"},
        "sitParIso": None,
        "indDeficit": "1",
        "revenuBrutGlobal": None,
        "sitParDeclaree": {
            "sitPartP": "0",
            "sitPartF": "1",
            "sitPartW": "1",  # from caseS
            "sitComb": "0",
            "pensVeufGuerre": "0",
            "indEnfSeul5ansMin": "1",
            "indNonSeul": "0",
        },
        "indOptionImpotSepar": "0",
        "montTotIr": 1_200,
        "rev": {"tspr": [{"code": "1AJ", "valeur": "39000"}]},
        # Placed by birth name and date (the person rows), whatever the rows' order.
        "spiDec1": COUPLE_1,
        "spiDec2": COUPLE_2,
        "dateDebutPeriode": "2025-01-01",
        "dateFinPeriode": "2025-12-31",
        "typeAvis": 1,
    }
    single = ir[("production", SINGLE, 2024)]
    assert single["spiDec1"] == SINGLE
    assert "spiDec2" not in single
    assert "nmNaiDec2" not in single
    assert (single["sitParIso"], single["sitPart"]) == ("T", "T")
    assert (single["dateDebutPeriode"], single["dateFinPeriode"]) == ("2024-01-01", "2024-12-31")
    unknown = ir[("production", UNKNOWN_1, 2025)]
    assert "spiDec1" not in unknown
    assert "spiDec2" not in unknown
    assert factures == {
        COUPLE_1: [
            {"numLigne": 1, "codeLigne": "IMPNET", "libelleLigne": "Impôt", "colonne1": "1200"}
        ]
    }
    assert ifi == {("production", COUPLE_1): {"indicateurIfiIsf": "O"}}
    assert th == {("production", COUPLE_1): {"codeDsf": "210", "numVoie": "15"}}
    # What the migration wrote is what the importer accepts.
    for (_store, spi, annrev), record in ir.items():
        ImportLine.model_validate({"spi": spi, "annrev": annrev, "foyer": "F", "record": record})
    for line in factures[COUPLE_1]:
        FactureLine.model_validate(line)
    IfiLine.model_validate(
        {"ressource": "ifi", "spi": COUPLE_1, "annrev": 2025, "foyer": "F"}
        | {"record": ifi[("production", COUPLE_1)]}
    )
    ThHeading.model_validate(th[("production", COUPLE_1)])


def _migration() -> ModuleType:
    path = MIGRATIONS / "versions" / "0010_provider_shapes.py"
    spec = importlib.util.spec_from_file_location("migration_0010", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_conversion_is_idempotent_and_downgrade_refuses(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine, "0009")
    _load(engine)
    upgrade(engine, "0010")  # later revisions have their own downgrades
    converted = _records(engine, _ir, "spi", "annrev")
    migration = _migration()
    for (_store, _spi, annrev), record in converted.items():
        again = migration.convert_ir(record, annrev, record.get("spiDec1"), record.get("spiDec2"))
        assert again == record
    try:
        with pytest.raises(RuntimeError, match="irréversible"):
            command.downgrade(alembic_config(engine), "0009")
        assert _records(engine, _ir, "spi", "annrev") == converted
    finally:
        engine.dispose()


def test_an_empty_store_migrates(empty_url: str) -> None:
    engine = make_engine(empty_url)
    upgrade(engine)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(_ir)).scalar() == 0
    finally:
        engine.dispose()

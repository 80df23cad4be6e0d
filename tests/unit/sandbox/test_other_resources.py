"""The sandbox's IR notices, IFI declarations and housing-tax headings: deterministic,
valid for the importer's models, coherent with the rest, and drawn apart from it."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from pydantic import TypeAdapter
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from guichet.records.ir_record import Facture, IfiRecord, ThHeading
from guichet.records.models import IfiSituation, IrSituation, ThAvis
from guichet.sandbox import personas, population
from guichet.sandbox.fiscal import IFI_THRESHOLD, facture_lines, ifi_amount, ifi_record
from guichet.sandbox.population import generate_population, seed

YEAR = 2026


def digest(rows: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def without_bills(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "facture"} for r in rows]


def test_same_seed_same_rows_another_seed_other_rows() -> None:
    a = generate_population(households=400, seed=5, reference_year=YEAR, store="sandbox")
    b = generate_population(households=400, seed=5, reference_year=YEAR, store="sandbox")
    c = generate_population(households=400, seed=6, reference_year=YEAR, store="sandbox")
    for name in ("situations", "th_avis", "ifi"):
        assert digest(getattr(a, name)) == digest(getattr(b, name)), name
        assert digest(getattr(a, name)) != digest(getattr(c, name)), name


def test_bills_and_ifi_are_drawn_apart_from_the_records(monkeypatch: pytest.MonkeyPatch) -> None:
    """Their own seeded generators: other bill and IFI draws leave a seed's persons, IR
    records and premises as they were."""
    a = generate_population(households=400, seed=5, reference_year=YEAR, store="sandbox")
    monkeypatch.setattr(population, "_UNPAID", 0.5)
    monkeypatch.setattr(population, "_IFI_DECLARES", 0.2)
    b = generate_population(households=400, seed=5, reference_year=YEAR, store="sandbox")
    assert digest(a.persons) == digest(b.persons)
    assert digest(without_bills(a.situations)) == digest(without_bills(b.situations))
    assert digest(a.th_locaux) == digest(b.th_locaux)
    assert digest(a.situations) != digest(b.situations)
    assert len(b.ifi) > len(a.ifi)


def test_every_row_passes_the_importers_models() -> None:
    population = generate_population(households=500, seed=9, reference_year=YEAR, store="s")
    bills = TypeAdapter(Facture)
    for row in population.situations:
        bills.validate_python(row["facture"])
    for row in population.ifi:
        IfiRecord.model_validate(row["record"])
    for row in population.th_avis:
        ThHeading.model_validate(row["record"])


def test_notices_add_up() -> None:
    population = generate_population(households=500, seed=9, reference_year=YEAR, store="s")
    unpaid = 0
    for row in population.situations:
        lines = {line["codeLigne"]: int(line["colonne1"]) for line in row["facture"]}
        assert lines["IMPNET"] == row["record"]["montTotIr"]
        if "RESTIT" in lines:
            assert lines["PAS"] - lines["IMPNET"] == lines["RESTIT"]
            continue
        assert lines["SOLDE"] == lines["IMPNET"] - lines["PAS"] >= 0
        assert lines["RESTE"] == lines["SOLDE"] - lines["PAYE"]
        unpaid += lines["RESTE"] > 0
    assert 0 < unpaid < len(population.situations) * 0.1


def test_ifi_is_rare_and_follows_the_threshold() -> None:
    population = generate_population(households=3_000, seed=3, reference_year=YEAR, store="s")
    generated = [r for r in population.ifi if r["spi"] not in personas.PERSONA_SPIS]
    households = {r["foyer"] for r in generated}
    assert 5 < len(households) < 60  # under 2 % of households
    # The provider's record only: liable ("O") or declaring below the threshold ("N").
    assert {tuple(r["record"].items()) for r in generated} == {
        (("indicateurIfiIsf", "O"),),
        (("indicateurIfiIsf", "N"),),
    }
    # Each declarant of the household holds the declaration, for the three years.
    years = {(r["foyer"], r["annrev"]) for r in generated}
    assert len(years) == 3 * len(households)


def test_every_principal_assessment_has_a_heading() -> None:
    population = generate_population(households=300, seed=4, reference_year=YEAR, store="s")
    principal = {(r["spi"], r["annee"], r["avis"]) for r in population.th_locaux if r["principal"]}
    headings = {(r["spi"], r["annee"], r["avis"]) for r in population.th_avis}
    assert principal <= headings
    names = {p["spi"]: p for p in population.persons}
    for row in population.th_avis:
        assert row["record"]["libelleEdition1"]
        assert names[row["spi"]]  # the heading belongs to a known person


def test_the_fiscal_rules() -> None:
    assert ifi_amount(IFI_THRESHOLD - 1) == 0
    assert ifi_amount(1_350_000) == 2_850 - (17_500 - 16_875)  # with the décote
    assert ifi_amount(3_000_000) == 2_500 + 8_890 + 4_300
    assert ifi_record(900_000) == {"indicateurIfiIsf": "N"}
    assert ifi_record(IFI_THRESHOLD) == {"indicateurIfiIsf": "O"}
    record = {"montTotIr": 1_000, "datRec": "2026-07-31"}
    unpaid = facture_lines(record, 2025, withheld=700, paid=False)
    assert [(x["codeLigne"], x["colonne1"]) for x in unpaid] == [
        ("IMPNET", "1000"),
        ("PAS", "700"),
        ("SOLDE", "300"),
        ("PAYE", "0"),
        ("RESTE", "300"),
    ]
    assert unpaid[2]["colonne3"] == "2026-09-15"
    # A column a line does not use is omitted, not null.
    assert unpaid[0] == {
        "numLigne": 1,
        "codeLigne": "IMPNET",
        "libelleLigne": "Impôt sur le revenu net",
        "colonne1": "1000",
    }
    assert all(None not in line.values() for line in unpaid)
    # A later recovery date (a rectifying notice) moves the deadline with it.
    later = facture_lines(record | {"datRec": "2026-11-30"}, 2025, withheld=700, paid=False)
    assert later[2]["colonne3"] == "2027-01-15"
    refund = facture_lines(record, 2025, withheld=1_100, paid=True)
    assert refund[-1]["codeLigne"] == "RESTIT"
    assert refund[-1]["colonne1"] == "100"


def test_seed_writes_and_replaces_them(session_factory: sessionmaker[Session]) -> None:
    seed(session_factory, households=50, seed=2, reference_year=YEAR)
    seed(session_factory, households=50, seed=2, reference_year=YEAR)

    def count(model: type[IfiSituation | ThAvis]) -> int:
        with session_factory() as s:
            return s.scalar(select(func.count()).select_from(model)) or 0

    population = generate_population(households=50, seed=2, reference_year=YEAR, store="sandbox")
    assert count(ThAvis) == len(population.th_avis)
    assert count(IfiSituation) == len(population.ifi) >= 6  # the GARNIERs at least
    with session_factory() as s:
        garnier = s.get(IfiSituation, ("sandbox", personas.FULL_1.spi, YEAR - 1))
        assert garnier is not None
        assert garnier.record["indicateurIfiIsf"] == "O"
        bernard = s.get(IrSituation, ("sandbox", personas.COUPLE_1.spi, YEAR - 1, 1))
        assert bernard is not None
        assert bernard.facture is not None
        assert bernard.facture[-1]["codeLigne"] == "RESTE"
        assert int(bernard.facture[-1]["colonne1"]) > 0

"""The sandbox's records have the provider's shapes: every value that does not exist is
omitted (null only for the four nullable ones), and the personas show the situations the
provider's fields exist for (a death, two notices in one year, a marriage, a divorce)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from guichet.records.importer import ImportLine, parse_file
from guichet.records.ir_record import (
    NULLABLE_FIELDS,
    RECORD_FIELDS,
    SIT_PAR_DECLAREE_FIELDS,
    Facture,
    IfiRecord,
    IrRecord,
    ThHeading,
)
from guichet.sandbox import personas
from guichet.sandbox.population import Population, generate_population

YEAR = 2026
N1, N2 = YEAR - 1, YEAR - 2
DOCS = Path(__file__).resolve().parents[3] / "docs" / "sandbox.md"


@pytest.fixture(scope="module")
def population() -> Population:
    return generate_population(households=300, seed=2026, reference_year=YEAR, store="sandbox")


def nulls(value: Any, path: str = "") -> Iterator[str]:
    """The paths of the ``null`` members of ``value``, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if item is None:
                yield where
            else:
                yield from nulls(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from nulls(item, f"{path}[{i}]")


def situations(population: Population, spi: str, annrev: int) -> list[dict[str, Any]]:
    """The ``ir_situation`` rows of ``spi`` for ``annrev``, in rang order."""
    rows = [r for r in population.situations if r["spi"] == spi and r["annrev"] == annrev]
    return sorted(rows, key=lambda r: r["rang"])


def test_every_record_has_the_provider_shape(population: Population) -> None:
    bills = TypeAdapter(Facture)
    for row in population.situations:
        record = row["record"]
        IrRecord.model_validate(record)
        assert set(record) <= set(RECORD_FIELDS)
        assert [p for p in nulls(record) if p not in NULLABLE_FIELDS] == [], row["foyer"]
        assert isinstance(record["indDeficit"], str)
        assert isinstance(record["indOptionImpotSepar"], str)
        assert tuple(record["sitParDeclaree"]) == SIT_PAR_DECLAREE_FIELDS
        assert set(record["sitParDeclaree"].values()) <= {"0", "1"}
        assert record["typeAvis"] in (1, 2)
        assert "annRevenu" not in record  # the store's annrev column
        bills.validate_python(row["facture"])
        assert list(nulls(row["facture"])) == []
    for row in population.ifi:
        IfiRecord.model_validate(row["record"])
        assert set(row["record"]) == {"indicateurIfiIsf"}
    for row in population.th_avis:
        ThHeading.model_validate(row["record"])
        assert list(nulls(row["record"])) == []


def test_every_row_is_a_valid_import_line(population: Population) -> None:
    """What the sandbox holds, ``guichet data import`` would load as it is."""
    lines = [
        json.dumps(
            {k: row[k] for k in ("spi", "annrev", "rang", "foyer", "record", "facture")},
            default=str,
        )
        for row in population.situations
    ]
    parsed, errors = parse_file(lines)
    assert errors == []
    assert len(parsed.situations) == len(lines)
    first = parsed.situations[0]
    assert isinstance(first, ImportLine)
    assert (
        first.record.model_dump(mode="json", exclude_unset=True)
        == (population.situations[0]["record"])
    )


def test_values_that_do_not_exist_are_omitted(population: Population) -> None:
    single = situations(population, personas.SINGLE.spi, N1)[0]["record"]
    assert not {k for k in single if k.endswith("Dec2")}  # nmNaiDec2, spiDec2…
    assert "nmUsaDec1" not in single  # no usage name
    assert "complementAdresse" not in single["aftDetail"]
    assert "sitPart" not in single
    assert single["sitParIso"] is None  # nullable: null, as the convention has it
    couple = situations(population, personas.COUPLE_1.spi, N1)[0]["record"]
    assert (couple["spiDec1"], couple["spiDec2"]) == (personas.COUPLE_1.spi, personas.COUPLE_2.spi)
    assert "nmUsaDec1" not in couple
    assert couple["nmUsaDec2"] == "BERNARD"
    family = situations(population, personas.FAMILY.spi, N1)[0]["record"]
    assert family["aftDetail"]["complementAdresse"] == "Bâtiment B"
    assert (family["sitParIso"], family["sitPart"]) == ("T", "T")
    # The notice's columns a line does not use are omitted.
    refund = situations(population, personas.DUBOIS.spi, N1)[0]["facture"]
    assert refund[0].keys() == {"numLigne", "codeLigne", "libelleLigne", "colonne1"}


def test_generated_situations_cover_the_whole_year(population: Population) -> None:
    generated = [r for r in population.situations if r["foyer"].startswith("SBX")]
    assert generated
    for row in generated:
        record = row["record"]
        assert row["rang"] == 1
        assert record["dateDebutPeriode"] == f"{row['annrev']}-01-01"
        assert record["dateFinPeriode"] == f"{row['annrev']}-12-31"
        assert record["typeAvis"] == 1
        assert not {"dateDecesdec1", "dateDecesdec2"} & set(record)


def test_a_declarants_periods_follow_each_other(population: Population) -> None:
    """Each SPI's initial notices of a year: from 1 January, each the day after the one
    before, to 31 December, unless the declarant died."""
    years: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in population.situations:
        if row["record"]["typeAvis"] == 1:
            years.setdefault((row["spi"], row["annrev"]), []).append(row)
    for (spi, annrev), rows in years.items():
        rows.sort(key=lambda r: r["rang"])
        start = dt.date(annrev, 1, 1)
        for row in rows:
            record = row["record"]
            assert record["dateDebutPeriode"] == start.isoformat(), (spi, annrev)
            start = dt.date.fromisoformat(record["dateFinPeriode"]) + dt.timedelta(days=1)
        last = rows[-1]["record"]
        position = 1 if last["spiDec1"] == spi else 2
        died = last.get(f"dateDecesdec{position}")
        assert last["dateFinPeriode"] == (died or f"{annrev}-12-31"), (spi, annrev)


def test_a_declarant_deceased_during_n1(population: Population) -> None:
    death = dt.date(N1, *personas.DEATH).isoformat()
    [couple] = situations(population, personas.DECEASED.spi, N1)
    record = couple["record"]
    assert couple["rang"] == 1
    assert (record["sitFam"], record["spiDec1"], record["spiDec2"]) == (
        "M",
        personas.DECEASED.spi,
        personas.WIDOW.spi,
    )
    assert (record["dateDebutPeriode"], record["dateFinPeriode"]) == (f"{N1}-01-01", death)
    assert record["dateDecesdec1"] == death
    assert "dateDecesdec2" not in record
    widow = situations(population, personas.WIDOW.spi, N1)
    assert [r["rang"] for r in widow] == [1, 2]
    assert widow[0]["record"] == record  # the same couple
    after = widow[1]["record"]
    assert (after["sitFam"], after["nbPart"], after["spiDec1"]) == ("V", 2.0, personas.WIDOW.spi)
    assert after["dateDebutPeriode"] == f"{N1}-03-18"
    assert after["dateFinPeriode"] == f"{N1}-12-31"
    assert not {"spiDec2", "nmNaiDec2", "dateDecesdec1", "dateDecesdec2"} & set(after)
    # Before the death: one situation of the couple, the whole year, no date of death.
    [before] = situations(population, personas.WIDOW.spi, N2)
    assert before["record"]["sitFam"] == "M"
    assert before["record"]["dateFinPeriode"] == f"{N2}-12-31"
    assert "dateDecesdec1" not in before["record"]


def test_two_notices_in_one_year(population: Population) -> None:
    initial, rectified = situations(population, personas.RECTIFIED.spi, N1)
    first, second = initial["record"], rectified["record"]
    assert (initial["rang"], rectified["rang"]) == (1, 2)
    assert (first["typeAvis"], second["typeAvis"]) == (1, 2)
    assert initial["foyer"] == rectified["foyer"]
    for record in (first, second):
        assert (record["dateDebutPeriode"], record["dateFinPeriode"]) == (
            f"{N1}-01-01",
            f"{N1}-12-31",
        )
    assert second["rfr"] > first["rfr"]
    assert second["montTotIr"] > first["montTotIr"]
    assert second["datEtab"] > first["datEtab"]
    lines = {line["codeLigne"]: line for line in rectified["facture"]}
    assert int(lines["PAS"]["colonne1"]) == first["montTotIr"]  # already taken
    assert int(lines["RESTE"]["colonne1"]) == second["montTotIr"] - first["montTotIr"] > 0
    assert lines["SOLDE"]["colonne2"] == second["datRec"]
    [only] = situations(population, personas.RECTIFIED.spi, N2)
    assert only["record"]["typeAvis"] == 1


def test_a_marriage_splits_the_year_at_the_wedding(population: Population) -> None:
    wedding = dt.date(N1, *personas.WEDDING)
    for spi in (personas.BRIDE.spi, personas.GROOM.spi):
        single, couple = (r["record"] for r in situations(population, spi, N1))
        assert single["sitFam"] == "C"
        assert single["dateFinPeriode"] == (wedding - dt.timedelta(days=1)).isoformat()
        assert "spiDec2" not in single
        assert couple["sitFam"] == "M"
        assert couple["dateDebutPeriode"] == wedding.isoformat()
        assert (couple["spiDec1"], couple["spiDec2"]) == (personas.BRIDE.spi, personas.GROOM.spi)


def test_a_divorce_splits_the_year(population: Population) -> None:
    divorce = dt.date(N1, *personas.DIVORCE)
    husband = situations(population, personas.EX_HUSBAND.spi, N1)
    wife = situations(population, personas.EX_WIFE.spi, N1)
    assert husband[0]["record"] == wife[0]["record"]
    couple = husband[0]["record"]
    assert (couple["sitFam"], couple["nmUsaDec2"]) == ("M", "MARCHAND")
    assert couple["dateFinPeriode"] == (divorce - dt.timedelta(days=1)).isoformat()
    for rows, spi in ((husband, personas.EX_HUSBAND.spi), (wife, personas.EX_WIFE.spi)):
        after = rows[1]["record"]
        assert rows[1]["rang"] == 2
        assert (after["sitFam"], after["spiDec1"], after["dateDebutPeriode"]) == (
            "D",
            spi,
            divorce.isoformat(),
        )
        assert after["pac"]["nbPacH"] == 1
        assert (after["sitParIso"], after["nbPart"]) == ("T", 1.5)
    assert husband[1]["foyer"] != wife[1]["foyer"]
    assert "nmUsaDec1" not in wife[1]["record"]  # her birth name only, after the divorce


def test_existing_personas_keep_their_figures(population: Population) -> None:
    """The figures docs/sandbox.md quotes (LEP, parts) did not move."""

    def record(spi: str, rang: int = 0) -> dict[str, Any]:
        return dict(situations(population, spi, N1)[rang]["record"])

    assert (
        record(personas.SHARED_23255.spi)["rfr"],
        record(personas.SHARED_23255.spi)["nbPart"],
    ) == (
        17_820,
        1.0,
    )
    assert (record(personas.FAMILY.spi)["rfr"], record(personas.FAMILY.spi)["nbPart"]) == (
        26_820,
        2.75,
    )
    assert record(personas.SINGLE.spi)["rfr"] == 27_900
    assert record(personas.SHARED_15247.spi)["nbPart"] == 3.0
    assert record(personas.BRIDE.spi, 1)["nbPart"] == 2.0


def test_new_personas_leave_the_others_premises_alone(population: Population) -> None:
    """The personas' premises are numbered by rank; the personas added later rank last."""
    first = sorted({d.spi for d, _address in personas.declarants()} - personas.LATER_PERSONA_SPIS)
    principal = {
        (r["spi"], r["avis"][4:])
        for r in population.th_locaux
        if r["annee"] == N2 and r["principal"] and r["spi"] in first
    }
    for rank, spi in enumerate(first):
        if spi in (personas.NO_TAX.spi, personas.FULL_2.spi):
            continue
        assert (spi, f"PER{rank:02d}") in principal, spi


def test_the_personas_table_lists_every_persona() -> None:
    text = DOCS.read_text(encoding="utf-8")
    keys = [p.key for p in personas.PERSONAS]
    assert len(keys) == len(set(keys))
    assert {"deceased", "widow", "rectified", "divorce-1", "divorce-2"} <= set(keys)
    for persona in personas.PERSONAS:
        assert f"`{persona.spi}`" in text, persona.key

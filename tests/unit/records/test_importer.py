"""The provider-extract importer: all or nothing, bad lines named by number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from guichet.commands.records import app
from guichet.records.importer import ImportRejected, import_impot_particulier
from guichet.records.models import IrSituation
from guichet.settings import Settings, use_settings

SPI_A = "3999999930262"
SPI_B = "3999999915247"
RECORD: dict[str, Any] = {
    "rfr": 31_250,
    "nbPart": 1.5,
    "sitFam": "D",
    "pac": {"nbPac": 1, "nbPacF": 0, "nbPacH": 1},
    "nmNaiDec1": "LEROY",
    "dateNaisDec1": {"jour": "15", "mois": "01", "annee": "1985"},
    "aftDetail": {"voie": "30 RUE ORDENER", "getcodePostal": "75018 PARIS"},
    "sitParIso": None,
    "indDeficit": "0",
    "rev": {"tspr": [{"code": "1AJ", "valeur": "34722"}]},
    "sitParDeclaree": {"sitPartP": "0", "sitPartF": "0", "indNonSeul": "0"},
    "indOptionImpotSepar": "0",
    "dateDebutPeriode": "2025-01-01",
    "dateFinPeriode": "2025-12-31",
    "typeAvis": 1,
}


def _line(spi: str = SPI_A, annrev: Any = 2025, rang: int = 1, **record: Any) -> str:
    body = RECORD | {"spiDec1": spi} | record
    if isinstance(annrev, int) and annrev != 2025:
        body |= {"dateDebutPeriode": f"{annrev}-01-01", "dateFinPeriode": f"{annrev}-12-31"}
    return json.dumps(
        {"spi": spi, "annrev": annrev, "rang": rang, "foyer": f"F-{spi}", "record": body}
    )


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "extract.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(
    factory: sessionmaker[Session], store: str = "production"
) -> list[tuple[str, int, int, Any]]:
    with factory() as s:
        return [
            (r.spi, r.annrev, r.rang, r.record)
            for r in s.scalars(
                select(IrSituation)
                .where(IrSituation.store == store)
                .order_by(IrSituation.spi, IrSituation.annrev, IrSituation.rang)
            )
        ]


def test_a_good_file_loads_and_replaces_the_pairs_it_holds(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    first = _write(tmp_path, _line(), _line(rang=2, sitFam="M"), _line(SPI_B, 2024))
    report = import_impot_particulier(session_factory, first)
    assert (report.situations, report.pairs) == (3, 2)
    rows = _rows(session_factory)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (SPI_B, 2024, 1),
        (SPI_A, 2025, 1),
        (SPI_A, 2025, 2),
    ]
    assert rows[1][3] == RECORD | {"spiDec1": SPI_A}  # stored as sent: same fields, same types
    # A new extract for (SPI_A, 2025) replaces both of its situations; SPI_B stays.
    second = _write(tmp_path, _line(rfr=40_000))
    import_impot_particulier(session_factory, second)
    rows = _rows(session_factory)
    assert [(r[0], r[1], r[2]) for r in rows] == [(SPI_B, 2024, 1), (SPI_A, 2025, 1)]
    assert rows[1][3]["rfr"] == 40_000
    assert _rows(session_factory, "sandbox") == []


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (_line("3999999930263"), "spi"),
        (_line(annrev=25), "annrev"),
        (_line(annrev="2025"), "annrev"),
        (_line(rfr="31250"), "record.rfr"),
        (_line(rfr=-1), "record.rfr"),
        (_line(sitFam="X"), "record.sitFam"),
        (_line(inconnu=1), "record.inconnu"),
        (_line(dateNaisDec1={"jour": 15, "mois": "01", "annee": "1985"}), "dateNaisDec1.jour"),
        # The provider's types: indicators are strings, sitParDeclaree its own members.
        (_line(indDeficit=0), "record.indDeficit"),
        (_line(indOptionImpotSepar=1), "record.indOptionImpotSepar"),
        (_line(sitParDeclaree={"caseT": 1}), "record.sitParDeclaree.caseT"),
        (_line(sitParDeclaree={"sitPartP": "2"}), "record.sitParDeclaree.sitPartP"),
        (_line(typeAvis=3), "record.typeAvis"),
        (_line(typeAvis="1"), "record.typeAvis"),
        (_line(spiDec2="3999999930263"), "record.spiDec2: Value error, SPI invalide"),
        (_line(dateDecesdec1="2025-02-30"), "record.dateDecesdec1: Value error, date inexistante"),
        # A value that does not exist is omitted: null only for the four nullable fields.
        (_line(nbPart=None), "record.nbPart: null refusé"),
        (_line(nmUsaDec1=None), "record.nmUsaDec1: null refusé"),
        (_line(aftDetail={"complementAdresse": None}), "aftDetail.complementAdresse: null"),
        (_line(pac={"nbPac": 0, "nbPacF": None}), "record.pac.nbPacF: null refusé"),
        (_line(spiDec1=SPI_B), "spi : ni spiDec1 ni spiDec2 de record"),
        (_line(dateFinPeriode="2026-01-31"), "dateFinPeriode : hors de l'année de revenus 2025"),
        (_line(dateDebutPeriode="2025-06-14", dateFinPeriode="2025-06-13"), "postérieure"),
        ("{not json", "JSON invalide"),
        (_line(), "doublon de la ligne 1"),
    ],
)
def test_one_bad_line_loads_nothing_and_is_named(
    session_factory: sessionmaker[Session], tmp_path: Path, bad: str, fragment: str
) -> None:
    import_impot_particulier(session_factory, _write(tmp_path, _line(SPI_B, 2023)))
    before = _rows(session_factory)
    path = _write(tmp_path, _line(), "", _line(SPI_B, 2024), bad)
    with pytest.raises(ImportRejected) as caught:
        import_impot_particulier(session_factory, path)
    assert [e.line for e in caught.value.errors] == [4]
    assert fragment in caught.value.errors[0].message
    assert _rows(session_factory) == before


def test_cli_exit_codes(tmp_path: Path) -> None:
    use_settings(Settings(data_dir=tmp_path / "data"))
    try:
        runner = CliRunner()
        bad = _write(tmp_path, _line(), _line("3000000001251"))
        result = runner.invoke(app, ["import", "impot-particulier", str(bad)])
        assert result.exit_code == 2, result.output
        assert "ligne 2" in result.output
        assert "Traceback" not in result.output
        missing = runner.invoke(app, ["import", "impot-particulier", str(tmp_path / "nope.jsonl")])
        assert missing.exit_code == 2
        good = _write(tmp_path, _line(), _line(SPI_B))
        result = runner.invoke(app, ["import", "impot-particulier", str(good)])
        assert result.exit_code == 0, result.output
        assert "2 situation(s)" in result.output
        assert "production" in result.output
    finally:
        use_settings(None)


def test_the_four_nullable_values_load_as_null(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    nulls = {"rfr": None, "sitFam": None, "sitParIso": None, "revenuBrutGlobal": None}
    import_impot_particulier(session_factory, _write(tmp_path, _line(**nulls)))
    [row] = _rows(session_factory)
    assert {k: row[3][k] for k in nulls} == nulls


def test_a_couple_split_by_a_death_loads_as_the_provider_sends_it(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Two declarants, each finding the couple's situation until the death (rang 1); the
    survivor's own situation after it (rang 2)."""
    couple = RECORD | {
        "sitFam": "M",
        "spiDec1": SPI_A,
        "spiDec2": SPI_B,
        "nmNaiDec2": "DURAND",
        "dateFinPeriode": "2025-03-17",
        "dateDecesdec1": "2025-03-17",
    }
    survivor = RECORD | {
        "sitFam": "V",
        "spiDec1": SPI_B,
        "dateDebutPeriode": "2025-03-18",
    }
    lines = [
        json.dumps({"spi": spi, "annrev": 2025, "rang": 1, "foyer": "F-1", "record": couple})
        for spi in (SPI_A, SPI_B)
    ]
    lines.append(
        json.dumps({"spi": SPI_B, "annrev": 2025, "rang": 2, "foyer": "F-2", "record": survivor})
    )
    report = import_impot_particulier(session_factory, _write(tmp_path, *lines))
    assert report.situations == 3
    rows = _rows(session_factory)
    assert [(r[0], r[2]) for r in rows] == [(SPI_B, 1), (SPI_B, 2), (SPI_A, 1)]
    assert rows[0][3] == rows[2][3] == couple
    assert rows[1][3] == survivor

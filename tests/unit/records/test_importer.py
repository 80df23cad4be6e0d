"""The provider-extract importer: all or nothing, bad lines named by number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from guichet.records.cli import app
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
    "indDeficit": 0,
    "rev": {"tspr": [{"code": "1AJ", "valeur": "34722"}]},
}


def _line(spi: str = SPI_A, annrev: Any = 2025, rang: int = 1, **record: Any) -> str:
    return json.dumps(
        {"spi": spi, "annrev": annrev, "rang": rang, "foyer": f"F-{spi}", "record": RECORD | record}
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
    assert rows[1][3] == RECORD  # stored as sent: same fields, same types
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
        (_line(sitFam="X"), "record.sitFam"),
        (_line(inconnu=1), "record.inconnu"),
        (_line(dateNaisDec1={"jour": 15, "mois": "01", "annee": "1985"}), "dateNaisDec1.jour"),
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

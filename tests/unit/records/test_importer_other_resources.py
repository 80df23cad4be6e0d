"""The provider-extract importer for the other resources: bills on IR lines, IFI and
housing-tax lines; all or nothing, bad lines named by number, pairs replaced."""

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
from guichet.records.models import IfiSituation, IrSituation, ThAvis, ThLocal
from guichet.settings import Settings, use_settings

SPI_A = "3999999930262"
SPI_B = "3999999915247"
FACTURE = [
    {"numLigne": 1, "codeLigne": "IMPNET", "libelleLigne": "Impôt net", "colonne1": "1200"},
    {
        "numLigne": 2,
        "codeLigne": "RESTE",
        "libelleLigne": "Reste à payer",
        "colonne1": "300",
        "colonne2": "2026-07-31",
    },
]
HEADING = {
    "codeDsf": "750",
    "codeCommune": "118",
    "numVoie": "30",
    "libelleVoie": "RUE ORDENER",
    "libelleCommune": "PARIS 18",
    "natureImp": "TH",
    "libelleEdition1": "M LEROY PAUL",
}


def ir(spi: str = SPI_A, annrev: int = 2025, **extra: Any) -> str:
    line = {"spi": spi, "annrev": annrev, "foyer": f"F-{spi}", "record": {"rfr": 31_250}}
    return json.dumps(line | extra)


def ifi(spi: str = SPI_A, annrev: int = 2025, **record: Any) -> str:
    body = {"indicateurIfiIsf": "O"}
    return json.dumps(
        {
            "ressource": "ifi",
            "spi": spi,
            "annrev": annrev,
            "foyer": f"F-{spi}",
            "record": body | record,
        }
    )


def th(spi: str = SPI_A, annee: int = 2025, avis: str = "2025P0001", **over: Any) -> str:
    line = {
        "ressource": "th",
        "spi": spi,
        "annee": annee,
        "avis": avis,
        "regimeTax": "P",
        "entete": HEADING,
        "locaux": [
            {"natureLocal": "AP", "affectation": "H", "invariant": "1180000001"},
            {"natureLocal": "DE", "affectation": "D", "invariant": "1180000002"},
        ],
    }
    return json.dumps(line | over)


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "extract.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def counts(factory: sessionmaker[Session], store: str = "production") -> dict[str, int]:
    with factory() as s:
        return {
            model.__tablename__: len(s.scalars(select(model).where(model.store == store)).all())
            for model in (IrSituation, IfiSituation, ThAvis, ThLocal)
        }


def test_every_kind_loads_and_reads_back(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write(tmp_path, ir(facture=FACTURE), ir(SPI_B), ifi(), th())
    report = import_impot_particulier(session_factory, path)
    assert (report.situations, report.ifi, report.th_avis) == (2, 1, 1)
    with session_factory() as s:
        bill = s.get(IrSituation, ("production", SPI_A, 2025, 1))
        assert bill is not None
        assert bill.facture is not None
        assert [line["codeLigne"] for line in bill.facture] == ["IMPNET", "RESTE"]
        assert "colonne3" not in bill.facture[1]  # what the provider sent, nothing more
        other = s.get(IrSituation, ("production", SPI_B, 2025, 1))
        assert other is not None
        assert other.facture is None
        held = s.get(IfiSituation, ("production", SPI_A, 2025))
        assert held is not None
        assert held.record == {"indicateurIfiIsf": "O"}
        heading = s.get(ThAvis, ("production", SPI_A, 2025, "2025P0001"))
        assert heading is not None
        assert heading.record == HEADING
        locaux = s.scalars(select(ThLocal).order_by(ThLocal.invariant)).all()
        assert [(lo.affectation, lo.principal, lo.avis) for lo in locaux] == [
            ("H", True, "2025P0001"),
            ("D", True, "2025P0001"),
        ]


def test_a_file_replaces_what_it_holds_for_its_pairs_only(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    import_impot_particulier(
        session_factory,
        write(tmp_path, ifi(), ifi(annrev=2024), th(), th(annee=2024, avis="2024P0001")),
    )
    second = tmp_path / "second"
    second.mkdir()
    import_impot_particulier(
        session_factory,
        write(
            second,
            ifi(indicateurIfiIsf="N"),
            th(
                avis="2025P0009",
                regimeTax="S",
                locaux=[{"natureLocal": "MA", "affectation": "H", "invariant": "0740000001"}],
            ),
        ),
    )
    with session_factory() as s:
        years = {r.annrev: r.record["indicateurIfiIsf"] for r in s.scalars(select(IfiSituation))}
        assert years == {2025: "N", 2024: "O"}
        avis = sorted((r.annee, r.avis) for r in s.scalars(select(ThAvis)))
        assert avis == [(2024, "2024P0001"), (2025, "2025P0009")]
        locaux = sorted((r.annee, r.invariant, r.principal) for r in s.scalars(select(ThLocal)))
        assert locaux == [
            (2024, "1180000001", True),
            (2024, "1180000002", True),
            (2025, "0740000001", False),
        ]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (ifi(indicateurIfiIsf="X"), "record.indicateurIfiIsf"),
        # The provider's IFI record is the indicator alone.
        (ifi(montantIfi=3_900), "record.montantIfi"),
        (ir(facture=[FACTURE[0] | {"colonne2": None}]), "facture.0.colonne2: null refusé"),
        (th(entete=HEADING | {"btq": None}), "entete.btq: null refusé"),
        (ir(facture=[{"numLigne": 1, "codeLigne": "x y", "libelleLigne": "?"}]), "codeLigne"),
        (ir(facture=[FACTURE[0], FACTURE[0]]), "numLigne must be unique"),
        (th(regimeTax="X"), "regimeTax"),
        (th(locaux=[]), "locaux"),
        (th(entete=HEADING | {"codeDsf": "7500"}), "entete.codeDsf"),
        (th(entete=HEADING | {"surprise": 1}), "entete.surprise"),
        (json.dumps({"ressource": "lep", "spi": SPI_A}), "ressource: inconnue"),
        (th(spi="3999999930263"), "spi"),
        (ifi(), "doublon de la ligne 1"),
    ],
)
def test_one_bad_line_loads_nothing_and_is_named(
    session_factory: sessionmaker[Session], tmp_path: Path, bad: str, message: str
) -> None:
    path = write(tmp_path, ifi(), ir(facture=FACTURE), th(), bad)
    with pytest.raises(ImportRejected) as caught:
        import_impot_particulier(session_factory, path)
    [error] = caught.value.errors
    assert error.line == 4
    assert message in error.message
    assert counts(session_factory) == {
        "ir_situation": 0,
        "ifi_situation": 0,
        "th_avis": 0,
        "th_local": 0,
    }


def test_a_premises_declared_twice_in_a_year_is_refused(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    """Two assessments may not share a premises (the store's key is spi, year, invariant)."""
    path = write(tmp_path, th(), th(avis="2025P0002"))
    with pytest.raises(ImportRejected) as caught:
        import_impot_particulier(session_factory, path)
    assert str(caught.value.errors[0]) == "ligne 2 : local 1180000001 déjà déclaré à la ligne 1"


def test_the_sandbox_store_is_another_store(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    import_impot_particulier(session_factory, write(tmp_path, ifi(), th()), store="sandbox")
    assert counts(session_factory)["ifi_situation"] == 0
    assert counts(session_factory, "sandbox")["th_avis"] == 1


def test_the_command_names_the_bad_line_and_loads_the_good_file(tmp_path: Path) -> None:
    use_settings(Settings(data_dir=tmp_path / "data"))
    try:
        runner = CliRunner()
        bad = write(tmp_path, ir(facture=FACTURE), th(regimeTax="X"))
        result = runner.invoke(app, ["import", "impot-particulier", str(bad)])
        assert result.exit_code == 2, result.output
        assert "ligne 2 : regimeTax" in result.output
        good = write(tmp_path, ir(facture=FACTURE), ifi(), th())
        result = runner.invoke(app, ["import", "impot-particulier", str(good)])
        assert result.exit_code == 0, result.output
        said = " ".join(result.output.split())
        assert "1 situation(s) IR, 1 déclaration(s) IFI et 1 avis de taxe d'habitation" in said
    finally:
        use_settings(None)

"""Production imports (issue 12 §7): the R2P (état civil) extract, validated line by line as
the IR extract is; an empty or undecodable file is an error at its real line; the command
loads into the production store's own database."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from guichet.commands.records import app
from guichet.records.importer import ImportRejected, import_impot_particulier
from guichet.records.models import Person
from guichet.records.r2p_importer import import_r2p
from guichet.runtime import open_runtime
from guichet.settings import Settings, use_settings

SPI = "3999999930262"
SPI_B = "3000000001250"


def _person(spi: str = SPI, **changes: Any) -> dict[str, Any]:
    person: dict[str, Any] = {
        "spi": spi,
        "sexe": "F",
        "nomNaissance": "Lefèvre",
        "nomUsage": "Martin",
        "prenoms": "Marie Claire",
        "dateNaissance": "1980-05-12",
        "codePaysNaissance": "99100",
        "codeDepartementNaissance": "16",
        "codeCommuneNaissance": "16015",
        "lieuNaissance": "Angoulême",
        "adresse": {
            "cdPays": "99100",
            "lbPays": "FRANCE",
            "cdDepartement": "16",
            "lbDepartement": "CHARENTE",
            "cdCommune": "015",
            "lbCommune": "ANGOULEME",
            "lbVoie": "RTE DU GAL DE GAULLE",
            "numeroVoie": "35",
        },
    }
    person.update(changes)
    return {k: v for k, v in person.items() if v is not ...}


def _write(tmp_path: Path, *lines: dict[str, Any] | str, name: str = "r2p.jsonl") -> Path:
    path = tmp_path / name
    text = [line if isinstance(line, str) else json.dumps(line) for line in lines]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def _persons(session_factory: sessionmaker[Session], store: str = "production") -> list[Person]:
    with session_factory() as session:
        return list(session.scalars(select(Person).where(Person.store == store)))


def test_persons_load_in_the_providers_canonical_form(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    abroad = _person(
        SPI_B,
        sexe="M",
        nomUsage=...,
        codePaysNaissance="99134",
        codeDepartementNaissance=...,
        codeCommuneNaissance=...,
        lieuNaissance=...,
        communicable=False,
    )
    report = import_r2p(session_factory, _write(tmp_path, _person(), "", abroad))
    assert (report.store, report.persons, report.replaced) == ("production", 2, 0)
    first, second = sorted(_persons(session_factory), key=lambda p: p.spi)
    assert first.spi == SPI_B
    assert first.communicable is False
    assert first.code_dept_naissance is None
    assert first.nom_usage is None
    assert second.nom_naissance == "LEFEVRE"  # what the R2P searches compare
    assert second.prenoms == "MARIE CLAIRE"
    assert second.date_naissance == dt.date(1980, 5, 12)
    assert second.adresse["lbVoie"] == "RTE DU GAL DE GAULLE"
    # A second file replaces the person of the same SPI, nothing else.
    again = import_r2p(session_factory, _write(tmp_path, _person(nomUsage="DURAND")))
    assert again.replaced == 1
    assert {p.spi: p.nom_usage for p in _persons(session_factory)} == {
        SPI: "DURAND",
        SPI_B: None,
    }
    assert _persons(session_factory, "sandbox") == []


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (_person(spi="3999999930263"), "SPI invalide"),
        (_person(sexe="X"), "sexe"),
        (_person(dateNaissance="1980-02-30"), "date inexistante"),
        (_person(codeCommuneNaissance=...), "codeCommuneNaissance requis"),
        (_person(codeCommuneNaissance="75118"), "pas dans codeDepartementNaissance"),
        (_person(codeDepartementNaissance="00", codeCommuneNaissance="00001"), "inconnu"),
        (_person(nomUsage=None), "null refusé"),
        (_person(adresse={"lbPays": "FRANCE"}), "adresse.cdPays"),
        (_person(adresse={"cdPays": "99100", "cdCommune": 15}), "adresse.cdCommune"),
        (_person(extra="x"), "extra"),
        ("[1, 2]", "un objet JSON est attendu"),
        ("{not json", "JSON invalide"),
        (_person(), "doublon de la ligne 1"),
    ],
)
def test_one_bad_line_loads_nothing_and_is_named(
    session_factory: sessionmaker[Session], tmp_path: Path, bad: dict[str, Any] | str, fragment: str
) -> None:
    path = _write(tmp_path, _person(), _person(SPI_B), bad)
    with pytest.raises(ImportRejected) as caught:
        import_r2p(session_factory, path)
    assert [e.line for e in caught.value.errors] == [3]
    assert fragment in caught.value.errors[0].message, caught.value.errors[0].message
    assert _persons(session_factory) == []


@pytest.mark.parametrize("loader", [import_r2p, import_impot_particulier])
def test_an_empty_file_is_an_error(
    session_factory: sessionmaker[Session], tmp_path: Path, loader: Any
) -> None:
    for content in (b"", b"\n\n  \n"):
        path = tmp_path / "empty.jsonl"
        path.write_bytes(content)
        with pytest.raises(ImportRejected) as caught:
            loader(session_factory, path)
        assert [str(e) for e in caught.value.errors] == [
            "ligne 1 : fichier vide : aucune ligne à charger"
        ]


@pytest.mark.parametrize("loader", [import_r2p, import_impot_particulier])
def test_a_bad_utf8_byte_is_reported_at_its_line(
    session_factory: sessionmaker[Session], tmp_path: Path, loader: Any
) -> None:
    """Not "ligne 0": the line holding the byte (Latin-1 "è" here), and every such line."""
    good = json.dumps(_person()).encode()
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(good + b"\n\n" + b'{"nom": "Lef\xe8vre"}\n' + good + b"\n\xff\n")
    with pytest.raises(ImportRejected) as caught:
        loader(session_factory, path)
    assert [e.line for e in caught.value.errors] == [3, 5]
    assert "ligne 3 : pas en UTF-8 (octet 0xe8 en position 13" in str(caught.value.errors[0])


def test_a_byte_order_mark_is_accepted(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_person()).encode() + b"\r\n")
    assert import_r2p(session_factory, path).persons == 1


def test_the_command_loads_into_the_production_database_only(tmp_path: Path) -> None:
    """``guichet data import r2p``: the production store is its own database; the main
    database (which the sandbox gateway and the portal read) holds none of it."""
    settings = Settings(data_dir=tmp_path / "data", secret_key="k" * 48)
    use_settings(settings)
    try:
        runner = CliRunner()
        bad = _write(tmp_path, _person(), _person(sexe="X"), name="bad.jsonl")
        result = runner.invoke(app, ["import", "r2p", str(bad)])
        assert result.exit_code == 2, result.output
        assert "ligne 2" in result.output
        assert "Traceback" not in result.output
        empty = tmp_path / "empty.jsonl"
        empty.write_text("")
        result = runner.invoke(app, ["import", "r2p", str(empty)])
        assert result.exit_code == 2
        assert "fichier vide" in result.output
        good = _write(tmp_path, _person(), _person(SPI_B), name="good.jsonl")
        result = runner.invoke(app, ["import", "r2p", str(good)])
        assert result.exit_code == 0, result.output
        assert "2 personne(s)" in result.output
        assert "production" in result.output
        runtime = open_runtime(settings)
        try:
            production = runtime.records("production")
            assert production is not runtime.session_factory
            assert len(_persons(production)) == 2
            with runtime.session_factory() as session:
                main = session.scalar(
                    select(func.count()).select_from(Person).where(Person.store == "production")
                )
            assert main == 0
        finally:
            runtime.close()
        assert (settings.data_dir / "production-records.db").is_file()
    finally:
        use_settings(None)

"""The FICOBA production import (issue 12 §7): the bank-accounts file, validated line by line
as the other extracts are, replaces the store's file; the searches the API runs find what it
loaded (keys computed as the sandbox's writer computes them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from guichet.commands.records import app
from guichet.records.ficoba import FicobaCompte, FicobaNom
from guichet.records.ficoba_importer import import_ficoba
from guichet.records.ficoba_search import (
    NaturalPersonCriteria,
    search_by_iban,
    search_by_spi,
    search_natural_persons,
)
from guichet.records.importer import ImportRejected
from guichet.runtime import open_runtime
from guichet.sandbox.ficoba import french_iban
from guichet.settings import Settings, use_settings

SPI = "1234567890066"
SIRET = "73282932000074"
IBAN = french_iban("30004", "00123", "00012345678")


def _lines(**changes: dict[str, Any]) -> list[dict[str, Any]]:
    lines: dict[str, dict[str, Any]] = {
        "bank": {
            "ressource": "etablissement",
            "code": "30004",
            "libelle": "Banque de Test",
            "bic": "BNPAFRPP",
        },
        "branch": {
            "ressource": "guichet",
            "etablissement": "30004",
            "code": "00123",
            "libelle": "Angoulême Centre",
            "adresse": ["12 place du Minage", "16000 ANGOULEME"],
        },
        "person": {
            "ressource": "personnePhysique",
            "id": 1,
            "spi": SPI,
            "sexe": "F",
            "nomNaissance": "Lefèvre",
            "nomUsage": "Martin",
            "prenoms": "Marie Claire",
            "dateNaissance": "1980-05-12",
            "codePaysNaissance": "99100",
            "codeDepartementNaissance": "16",
            "codeCommuneNaissance": "015",
            "libelleCommuneNaissance": "Angoulême",
            "adresse": {
                "codePays": "99100",
                "codeDepartement": "16",
                "codeCommune": "015",
                "libelleCommune": "Angoulême",
                "codePostal": "16000",
                "natureVoie": "RTE",
                "libelleVoie": "du Gal de Gaulle",
                "numeroVoie": "35",
            },
        },
        "company": {
            "ressource": "personneMorale",
            "id": 1,
            "siret": SIRET,
            "raisonSociale": "Garnier et Fils SARL",
            "categorieJuridique": "5499",
            "adresse": {"codePays": "99100", "codeDepartement": "16", "codeCommune": "015"},
        },
        "account": {
            "ressource": "compte",
            "id": 1,
            "iban": IBAN,
            "etablissement": "30004",
            "guichet": "00123",
            "numero": "00012345678",
            "format": "IBAN",
            "nature": 1,
            "type": 1,
            "caracteristique": 1,
            "dateOuverture": "2015-03-01",
            "dateFiscale": "2015-03-02",
            "motifOuverture": "01",
            "detenteurs": [{"qualite": "TIT", "personnePhysique": 1}],
        },
        "box": {
            "ressource": "compte",
            "id": 2,
            "etablissement": "30004",
            "guichet": "00123",
            "numero": "C0042",
            "format": "INTERNE",
            "nature": 14,
            "type": 1,
            "caracteristique": 2,
            "dateOuverture": "2019-01-10",
            "dateFiscale": "2019-01-10",
            "motifOuverture": "01",
            "dateCloture": "2023-06-30",
            "motifCloture": "01",
            "detenteurs": [
                {"qualite": "TIT", "personneMorale": 1},
                {"qualite": "MAN", "personnePhysique": 1, "dateDebut": "2019-01-10"},
            ],
        },
    }
    for name, change in changes.items():
        lines[name] = {**lines[name], **change}
    return list(lines.values())


def _write(tmp_path: Path, lines: list[dict[str, Any] | str]) -> Path:
    path = tmp_path / "ficoba.jsonl"
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
        encoding="utf-8",
    )
    return path


def _accounts(session_factory: sessionmaker[Session], store: str = "production") -> int:
    with session_factory() as session:
        query = select(func.count()).select_from(FicobaCompte).where(FicobaCompte.store == store)
        return int(session.scalar(query) or 0)


def test_the_file_loads_and_the_searches_find_it(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    report = import_ficoba(session_factory, _write(tmp_path, list(_lines())))
    assert (report.comptes, report.detentions, report.personnes_physiques) == (2, 3, 1)
    with session_factory() as session:
        account = search_by_iban(session, "production", IBAN)
        assert account is not None
        found = search_by_spi(session, "production", SPI)
        assert [len(a.comptes) for a in found] == [2]  # holder of one, proxy on the box
        by_name = search_natural_persons(
            session, "production", NaturalPersonCriteria(nom="LEFEVRE", prenoms="Marie")
        )
        assert [a.personne.id for a in by_name] == [1]
        names = set(session.scalars(select(FicobaNom.cle).where(FicobaNom.store == "production")))
        assert names == {"LEFEVRE", "MARTIN"}
        assert search_by_iban(session, "sandbox", IBAN) is None
    # A second extract replaces the whole file.
    only_bank = _lines()[:3]
    import_ficoba(session_factory, _write(tmp_path, list(only_bank)))
    assert _accounts(session_factory) == 0


@pytest.mark.parametrize(
    ("lines", "line", "fragment"),
    [
        (_lines(account={"iban": IBAN[:-1] + "0"}), 5, "iban"),
        (_lines(account={"numero": "00012345679"}), 5, "iban"),
        (_lines(account={"nature": 99}), 5, "nature : valeur inconnue"),
        (_lines(box={"iban": IBAN}), 6, "coffre-fort"),
        (_lines(box={"motifCloture": ...}), 6, "motifCloture"),
        (_lines(box={"guichet": "00999"}), 6, "guichet : 30004 00999 absent"),
        (
            _lines(account={"detenteurs": [{"qualite": "TIT", "personnePhysique": 7}]}),
            5,
            "detenteurs.0.personnePhysique : 7 absente",
        ),
        (
            _lines(account={"detenteurs": [{"qualite": "TIT"}]}),
            5,
            "personnePhysique ou personneMorale",
        ),
        (_lines(account={"detenteurs": [{"qualite": "XXX", "personneMorale": 1}]}), 5, "qualite"),
        (_lines(company={"siret": "73282932000075"}), 4, "SIRET invalide"),
        (_lines(person={"nomUsage": None}), 3, "null refusé"),
        (_lines(person={"dateDeces": "1970-01-01"}), 3, "avant dateNaissance"),
        (_lines(bank={"bic": "bnp"}), 1, "bic"),
        (
            [*_lines(), {**_lines()[1], "etablissement": "99999"}],
            7,
            "etablissement : 99999 absent du fichier",
        ),
    ],
)
def test_one_bad_line_loads_nothing_and_is_named(
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    lines: list[dict[str, Any]],
    line: int,
    fragment: str,
) -> None:
    cleaned = [{k: v for k, v in x.items() if v is not ...} for x in lines]
    with pytest.raises(ImportRejected) as caught:
        import_ficoba(session_factory, _write(tmp_path, list(cleaned)))
    assert [e.line for e in caught.value.errors] == [line], caught.value.errors
    assert fragment in caught.value.errors[0].message, caught.value.errors[0].message
    assert _accounts(session_factory) == 0


def test_duplicates_and_unknown_kinds_are_named(
    session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    lines: list[dict[str, Any] | str] = [*_lines(), _lines()[4], {"ressource": "carte"}, ""]
    with pytest.raises(ImportRejected) as caught:
        import_ficoba(session_factory, _write(tmp_path, lines))
    assert [str(e) for e in caught.value.errors] == [
        "ligne 7 : doublon de la ligne 5 (compte id)",
        "ligne 8 : ressource: inconnue ('carte') : etablissement, guichet, personnePhysique, "
        "personneMorale, compte",
    ]


def test_the_command_loads_into_the_production_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_key="k" * 48)
    use_settings(settings)
    try:
        path = _write(tmp_path, list(_lines()))
        result = CliRunner().invoke(app, ["import", "ficoba", str(path)])
        assert result.exit_code == 0, result.output
        assert "2 compte(s)" in result.output
        runtime = open_runtime(settings)
        try:
            assert _accounts(runtime.records("production")) == 2
            assert _accounts(runtime.session_factory) == 0
        finally:
            runtime.close()
    finally:
        use_settings(None)

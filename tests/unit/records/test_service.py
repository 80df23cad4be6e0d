"""Store lookups: situations by SPI and year, persons by SPI and by état civil."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session, sessionmaker

from guichet.records import service
from guichet.sandbox import personas
from guichet.sandbox.population import seed

YEAR = 2026


def test_lookups(session_factory: sessionmaker[Session]) -> None:
    seed(session_factory, households=5, reference_year=YEAR)
    with session_factory() as s:
        bride = service.situations_of_year(s, "sandbox", personas.BRIDE.spi, YEAR - 1)
        assert [r.rang for r in bride] == [1, 2]
        assert service.situations_of_year(s, "production", personas.BRIDE.spi, YEAR - 1) == []
        every = service.situations_of(s, "sandbox", personas.BRIDE.spi)
        assert [(r.annrev, r.rang) for r in every] == [
            (YEAR - 1, 1),
            (YEAR - 1, 2),
            (YEAR - 2, 1),
            (YEAR - 3, 1),
        ]
        assert service.years_with_situation(s, "sandbox", personas.NO_N1.spi) == {
            YEAR - 2,
            YEAR - 3,
        }
        person = service.person_by_spi(s, "sandbox", personas.DUBOIS.spi)
        assert person is not None
        assert person.prenoms == "Angela Claire Louise"
        assert service.person_by_spi(s, "production", personas.DUBOIS.spi) is None


def test_etat_civil_ignores_case_and_accents(session_factory: sessionmaker[Session]) -> None:
    seed(session_factory, households=5, reference_year=YEAR)
    born = dt.date(1962, 8, 24)
    with session_factory() as s:
        for nom, prenom in (
            ("dubois", "angela"),
            ("Dubôis", "Angéla Claire"),
            ("DUBOIS", "ANGELA CLAIRE LOUISE"),
            (" Dubois ", None),
        ):
            found = service.persons_by_etat_civil(
                s, "sandbox", nom=nom, prenom=prenom, date_naissance=born, sexe="F"
            )
            assert [p.spi for p in found] == [personas.DUBOIS.spi], (nom, prenom)
        assert not service.persons_by_etat_civil(
            s, "sandbox", nom="Dubois", prenom="Claire", date_naissance=born
        )
        assert not service.persons_by_etat_civil(
            s, "sandbox", nom="Dubois", date_naissance=born, sexe="M"
        )
        assert not service.persons_by_etat_civil(
            s, "sandbox", nom="Dubois", date_naissance=born, code_commune="75115"
        )
        lefevre = service.persons_by_etat_civil(
            s, "sandbox", nom="lefevre", prenom="sophie-anne", date_naissance=dt.date(1979, 1, 30)
        )
        assert [p.spi for p in lefevre] == [personas.FAMILY.spi]
        homonyms = service.persons_by_etat_civil(
            s,
            "sandbox",
            nom="Dupont",
            prenom="Jean",
            date_naissance=dt.date(1975, 5, 5),
            sexe="M",
            code_pays="99100",
            code_dept="75",
            code_commune="75111",
        )
        assert [p.spi for p in homonyms] == [personas.HOMONYM_1.spi, personas.HOMONYM_2.spi]

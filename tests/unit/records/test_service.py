"""Store lookups: situations by SPI and year, persons by SPI and by état civil."""

from __future__ import annotations

import datetime as dt
from typing import Any

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
        person = service.person_by_spi(s, "sandbox", personas.DUBOIS.spi)
        assert person is not None
        assert person.prenoms == "Angela Claire Louise"
        assert service.person_by_spi(s, "production", personas.DUBOIS.spi) is None


def test_etat_civil_ignores_case_and_accents(session_factory: sessionmaker[Session]) -> None:
    seed(session_factory, households=5, reference_year=YEAR)
    born = (dt.date(1962, 8, 24), dt.date(1962, 8, 24))
    with session_factory() as s:
        for nom, prenom in (
            ("dubois", "angela"),
            ("Dubôis", "Angéla Claire"),
            ("DUBOIS", "ANGELA CLAIRE LOUISE"),
            (" Dubois ", None),
        ):
            found = service.persons_by_etat_civil(
                s, "sandbox", nom=nom, prenom=prenom, born=born, sexe="F"
            )
            assert [p.spi for p in found] == [personas.DUBOIS.spi], (nom, prenom)
        assert not service.persons_by_etat_civil(
            s, "sandbox", nom="Dubois", prenom="Claire", born=born
        )
        assert not service.persons_by_etat_civil(
            s, "sandbox", nom="Dubois", prenom="Angela Louise", born=born
        )
        assert not service.persons_by_etat_civil(s, "sandbox", nom="Dubois", born=born, sexe="M")
        assert not service.persons_by_etat_civil(
            s, "sandbox", nom="Dubois", born=born, code_commune="75115"
        )
        lefevre = service.persons_by_etat_civil(
            s, "sandbox", nom="lefevre", prenom="sophie-anne", born=(dt.date(1979, 1, 1),) * 2
        )
        assert not lefevre  # a range: 1 January only
        lefevre = service.persons_by_etat_civil(
            s,
            "sandbox",
            nom="lefevre",
            prenom="sophie-anne",
            born=(dt.date(1979, 1, 1), dt.date(1979, 12, 31)),
        )
        assert [p.spi for p in lefevre] == [personas.FAMILY.spi]
        homonyms = service.persons_by_etat_civil(
            s,
            "sandbox",
            nom="Dupont",
            prenom="Jean",
            born=(dt.date(1975, 5, 5), dt.date(1975, 5, 5)),
            sexe="M",
            code_pays="99100",
            code_dept="75",
            code_commune="75111",
        )
        assert [p.spi for p in homonyms] == [personas.HOMONYM_1.spi, personas.HOMONYM_2.spi]


def test_birth_place_criteria(session_factory: sessionmaker[Session]) -> None:
    seed(session_factory, households=5, reference_year=YEAR)
    with session_factory() as s:

        def spis(**criteria: Any) -> list[str]:
            found = service.persons_by_etat_civil(s, "sandbox", **criteria)
            return [p.spi for p in found]

        assert spis(nom="Dupont", commune_suffix="111") == [
            personas.HOMONYM_1.spi,
            personas.HOMONYM_2.spi,
        ]
        assert spis(nom="Dupont", commune_suffix="107") == []
        assert spis(nom="Da Silva", born_abroad=True) == [personas.ABROAD.spi]
        assert spis(nom="Da Silva", code_pays="99139") == [personas.ABROAD.spi]
        assert spis(nom="Dubois", born_abroad=True) == []


def test_address_criteria(session_factory: sessionmaker[Session]) -> None:
    """The address's codes narrow in SQL, its street labels on the rows found."""
    seed(session_factory, households=5, reference_year=YEAR)
    with session_factory() as s:

        def spis(**address: Any) -> list[str]:
            criteria = service.AddressCriteria(**address)
            found = service.persons_by_etat_civil(
                s, "sandbox", nom="Dupont", prenom="Jean", adresse=criteria
            )
            return [p.spi for p in found]

        both = [personas.HOMONYM_1.spi, personas.HOMONYM_2.spi]
        assert spis(codes={"cdPays": "99100"}, department="75") == both
        assert spis(codes={"cdCommune": "111"}) == both
        assert spis(codes={"numeroVoie": "12"}) == [personas.HOMONYM_1.spi]
        assert spis(street_type="BD") == [personas.HOMONYM_2.spi]
        assert spis(street_name="Oberkampf") == [personas.HOMONYM_1.spi]
        assert spis(street_name="rue oberkampf") == [personas.HOMONYM_1.spi]
        assert spis(street_type="RUE", street_name="Voltaire") == []
        assert spis(department="69") == []
        assert spis(codes={"cdTOM": "975"}) == []
        assert spis(codes={"indiceDeRepetition": "B"}) == []

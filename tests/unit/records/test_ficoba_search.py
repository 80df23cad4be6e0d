"""The FICOBA searches against the sandbox's bank file, on SQLite and PostgreSQL: every search
type of the provider's document, every persona outcome, the scoreAppariement ranking, and
the provider's shapes of what they return."""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from guichet.errors import BadRequest, ParameterInvalid
from guichet.records import ficoba_search as fs
from guichet.records.ficoba import NATURE_COFFRE, NATURE_LIVRET_A
from guichet.sandbox import ficoba
from guichet.sandbox import personas as ir
from guichet.sandbox.population import generate_population
from tests.support.contracts import contracts_folder, provider_errors

YEAR = 2026
STORE = "sandbox"
N1 = YEAR - 1


@functools.cache
def _bank_file() -> ficoba.BankFile:
    population = generate_population(households=40, seed=7, reference_year=YEAR, store=STORE)
    return ficoba.generate_bank_file(
        population.persons,
        seed=7,
        reference_year=YEAR,
        store=STORE,
        spouses=ficoba.couples(population.situations),
    )


@pytest.fixture
def session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    with session_factory() as s, s.begin():
        ficoba.write_bank_file(s, _bank_file())
    with session_factory() as s:
        yield s


def _pp(**etat_civil: str) -> fs.NaturalPersonCriteria:
    return fs.NaturalPersonCriteria.from_provider(etat_civil)


def _names(answers: list[fs.NaturalPersonAnswer]) -> list[tuple[float | None, str, str]]:
    return [(a.score, a.personne.nom_naissance, a.personne.prenoms) for a in answers]


# --- SPI, account, SIREN/SIRET ---------------------------------------------------------------


def test_spi_search_gives_the_person_and_every_account_open_first(session: Session) -> None:
    (answer,) = fs.search_by_spi(session, STORE, ir.SINGLE.spi)
    assert answer.score is None  # a search by identifier does not match
    assert (answer.personne.nom_naissance, answer.personne.prenoms) == ("MARTIN", "LUCIE")
    assert [a.nature for a in answer.comptes] == [1, 3, 4, 1]  # open by date, then closed
    assert [a.ouvert for a in answer.comptes] == [True, True, True, False]
    closed = answer.comptes[-1]
    assert closed.iban == ficoba.IBAN_MARTIN_CLOSED
    assert (closed.date_cloture, closed.motif_cloture) == (dt.date(YEAR - 8, 8, 31), "04")
    current = next(a for a in answer.comptes if a.iban == ficoba.IBAN_MARTIN)
    assert current.motif_ouverture == "02"  # the transfer from the closed one
    assert current.etablissement == fs.Bank("99101", "BANQUE DU BAC A SABLE", "BBASFRP0")
    assert current.guichet.libelle == "AGENCE LYON 01"
    assert [h.qualite for h in current.ayants_droit] == ["TIT"]


def test_spi_without_account_and_unknown_spi_give_no_answer(session: Session) -> None:
    assert fs.search_by_spi(session, STORE, ir.NO_TAX.spi) == []  # Chloé BLANC
    assert fs.search_by_spi(session, STORE, "3000000020269") == []
    with pytest.raises(BadRequest) as caught:  # spi_invalid
        fs.search_by_spi(session, STORE, "3000000020268")
    assert caught.value.field == "criteresRecherche.numeroSPI"


def test_a_proxy_finds_the_accounts_they_hold_a_proxy_on(session: Session) -> None:
    (paul,) = fs.search_by_spi(session, STORE, ir.SHARED_30262.spi)
    bonnet = next(a for a in paul.comptes if a.iban == ficoba.IBAN_BONNET)
    roles = {(h.qualite, h.personne.nom_naissance) for h in bonnet.ayants_droit}  # type: ignore[union-attr]
    assert roles == {("TIT", "BONNET"), ("MAN", "LEROY")}
    assert len(paul.comptes) == 3  # his two and hers


def test_account_search_open_closed_unknown_invalid(session: Session) -> None:
    account = fs.search_by_iban(session, STORE, ficoba.IBAN_FOURNIER.lower())
    assert account is not None
    assert account.date_cloture == dt.date(N1, 8, 31)
    assert (
        fs.search_by_iban(session, STORE, ficoba.french_iban("99101", "00010", "12345678901"))
        is None
    )
    with pytest.raises(ParameterInvalid) as caught:
        fs.search_by_iban(session, STORE, "FR7699101000509000000000100")
    assert caught.value.field == "criteresRecherche.iban"


def test_siren_gives_every_establishment_siret_one(session: Session) -> None:
    answers = fs.search_by_siret_siren(session, STORE, siren=ficoba.GARNIER_SIREN)
    assert [a.personne.siret for a in answers] == [ficoba.GARNIER_SIEGE, ficoba.GARNIER_ANNECY]
    assert [len(a.comptes) for a in answers] == [2, 1]
    (annecy,) = fs.search_by_siret_siren(session, STORE, siret=ficoba.GARNIER_ANNECY)
    assert annecy.personne.adresse.complement == "ZONE ARTISANALE"
    assert fs.search_by_siret_siren(session, STORE, siren=ficoba.UNKNOWN_SIREN) == []
    (ei,) = fs.search_by_siret_siren(session, STORE, siret=ficoba.MOREAU_EI_SIRET)
    assert ei.personne.categorie_juridique == "1000"
    assert ei.comptes[0].caracteristique == 2  # professional use


def test_beneficial_owners_and_manager_of_a_company(session: Session) -> None:
    (siege,) = fs.search_by_siret_siren(session, STORE, siret=ficoba.GARNIER_SIEGE)
    account = next(a for a in siege.comptes if a.iban == ficoba.IBAN_GARNIER_SIEGE)
    roles = sorted((h.qualite, getattr(h.personne, "spi", None)) for h in account.ayants_droit)
    assert roles == [
        ("BEF", ir.FULL_1.spi),
        ("BEF", ir.FULL_2.spi),
        ("MAN", ir.FULL_1.spi),
        ("TIT", None),
    ]


def test_safe_deposit_box_and_deceased_holder(session: Session) -> None:
    (louis,) = fs.search_by_spi(session, STORE, ir.FULL_1.spi)
    (box,) = [a for a in louis.comptes if a.nature == NATURE_COFFRE]
    assert (box.iban, box.format, box.type) == (None, "INTERNE", 2)
    assert "iban" not in box.provider()["caracteristiqueCompte"]
    assert {h.qualite for h in box.ayants_droit} == {"TIT", "COT"}
    (marcel,) = fs.search_by_spi(session, STORE, ir.DECEASED.spi)
    assert marcel.personne.date_deces == dt.date(N1, *ir.DEATH)
    assert marcel.personne.provider()["dateDeces"] == f"{N1}-03-17"
    livret = next(a for a in marcel.comptes if a.iban == ficoba.IBAN_LEGRAND_LIVRET)
    assert livret.succession
    assert livret.ouvert
    assert livret.provider()["caracteristiqueCompte"]["succession"] == "O"
    assert {h.qualite for h in livret.ayants_droit} == {"TIT", "AYD", "MAN"}
    closed = [a for a in marcel.comptes if not a.ouvert]
    assert [(a.nature, a.motif_cloture) for a in closed] == [(10, "03")]


# --- natural persons -------------------------------------------------------------------------


@pytest.mark.parametrize("nom", ["Lefèvre", "LEFEVRE", "le-fèvre", "Le Fevre", "lefebvre"])
def test_names_are_normalised_and_sound_alikes_found(session: Session, nom: str) -> None:
    answers = fs.search_natural_persons(
        session,
        STORE,
        _pp(
            nom=nom, prenoms="sophie", anneeNaissance="1979", moisNaissance="01", jourNaissance="30"
        ),
    )
    assert answers[0].personne.spi == ir.FAMILY.spi
    # The sound-alike is found; its name scores its trigram similarity (6 of 11 trigrams).
    assert answers[0].score == (100.0 if nom != "lefebvre" else pytest.approx(69.7, abs=0.01))


@pytest.mark.parametrize("nom", ["Da Silva", "da-silva", "DASILVA"])
def test_spaces_and_hyphens_in_names(session: Session, nom: str) -> None:
    (answer, *_) = fs.search_natural_persons(session, STORE, _pp(nom=nom, prenoms="Pedro"))
    assert (answer.personne.spi, answer.score) == (ir.ABROAD.spi, 100.0)
    birth = answer.personne.provider()
    assert birth["paysNaissance"] == {"codePays": "99139", "libellePays": "PORTUGAL"}
    assert "departementNaissance" not in birth
    assert "communeNaissance" not in birth


def test_usage_name_finds_the_spouse(session: Session) -> None:
    (answer, *_) = fs.search_natural_persons(session, STORE, _pp(nom="Bernard", prenoms="Camille"))
    assert answer.personne.spi == ir.COUPLE_2.spi
    joint = [a for a in answer.comptes if a.type == 2]
    assert joint
    assert {h.qualite for h in joint[0].ayants_droit} == {"TIT", "COT"}
    pea = [a for a in answer.comptes if a.nature == 11]  # her husband's PEA, as his proxy
    assert [h.qualite for h in pea[0].ayants_droit if h.personne.id == answer.personne.id] == [
        "MAN"
    ]


def test_homonyms_ranked_by_score_and_told_apart_by_the_address(session: Session) -> None:
    answers = fs.search_natural_persons(
        session, STORE, _pp(nom="Dupont", prenoms="Jean", anneeNaissance="1975")
    )
    top = [(s, n, p) for s, n, p in _names(answers) if n in ("DUPONT", "DUPOND")][:4]
    assert top == [
        (100.0, "DUPONT", "JEAN"),
        (100.0, "DUPONT", "JEAN"),
        (80.56, "DUPONT", "JEAN-PIERRE"),
        (70.37, "DUPOND", "JEAN"),
    ]
    assert [a.score for a in answers] == sorted((a.score for a in answers), reverse=True)
    located = fs.search_natural_persons(
        session,
        STORE,
        fs.NaturalPersonCriteria.from_provider(
            {"nom": "Dupont", "prenoms": "Jean", "anneeNaissance": "1975"},
            None,
            {"codeDepartement": "75", "codeCommune": "111", "libelleVoie": "rue Oberkampf"},
        ),
    )
    assert [(a.personne.spi, a.score) for a in located[:2]] == [
        (ir.HOMONYM_1.spi, 98.41),  # 12 rue Oberkampf
        (ir.HOMONYM_2.spi, 94.44),
    ]


def test_birth_date_range_sex_and_place(session: Session) -> None:
    autumn = fs.search_natural_persons(
        session,
        STORE,
        _pp(
            nom="Dupont",
            prenoms="Jean",
            anneeNaissanceDebut="1975",
            moisNaissanceDebut="06",
            anneeNaissanceFin="1975",
        ),
    )
    assert [a.personne.prenoms for a in autumn if a.personne.nom_naissance == "DUPONT"][:1] == [
        "JEAN-PIERRE"
    ]
    assert all(a.personne.date_naissance >= dt.date(1975, 6, 1) for a in autumn)
    women = fs.search_natural_persons(
        session, STORE, _pp(nom="Dupont", prenoms="Jean", sexe="F", anneeNaissance="1975")
    )
    assert all(a.personne.sexe == "F" for a in women)
    elsewhere = fs.search_natural_persons(
        session,
        STORE,
        fs.NaturalPersonCriteria.from_provider(
            {"nom": "Da Silva", "prenoms": "Pedro"}, {"codePaysNaissance": "99109"}
        ),
    )
    assert elsewhere[0].personne.spi == ir.ABROAD.spi
    assert elsewhere[0].score == pytest.approx(100 * 75 / 85, abs=0.01)  # birth place: 0


def test_no_account_no_answer(session: Session) -> None:
    assert fs.search_natural_persons(session, STORE, _pp(nom="Blanc", prenoms="Chloé",
        anneeNaissance="2004", moisNaissance="10", jourNaissance="10")) == []  # fmt: skip
    assert fs.search_natural_persons(session, STORE, _pp(nom="Zzyzx")) == []


def test_answers_are_bounded(session: Session) -> None:
    assert len(fs.search_natural_persons(session, STORE, _pp(nom="Dupont"), limit=3)) <= 3


# --- legal persons ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "designation",
    [
        {"raisonSociale": "Garnier et Fils"},
        {"raisonSociale": "SARL GARNIER ET FILS"},
        {"raisonSociale": "garnier-et-fils"},
        {"sigle": "G.E.F."},
        {"enseigne": "Menuiserie Garnier"},
        {"raisonSociale": "Garnier et fils", "codeCategorieJuridique": "54"},
    ],
)
def test_legal_person_by_name_sigle_sign_category(
    session: Session, designation: dict[str, str]
) -> None:
    answers = fs.search_legal_persons(
        session, STORE, fs.LegalPersonCriteria.from_provider(designation)
    )
    assert answers[0].personne.siret == ficoba.GARNIER_SIEGE
    assert answers[0].score == 100.0
    assert ficoba.GARNIER_ANNECY in {a.personne.siret for a in answers}


def test_legal_category_filters_and_address_ranks(session: Session) -> None:
    none = fs.search_legal_persons(
        session,
        STORE,
        fs.LegalPersonCriteria.from_provider(
            {"raisonSociale": "Garnier et fils", "codeCategorieJuridique": "5710"}
        ),
    )
    assert ficoba.GARNIER_SIEGE not in {a.personne.siret for a in none}
    annecy = fs.search_legal_persons(
        session,
        STORE,
        fs.LegalPersonCriteria.from_provider(
            {"raisonSociale": "Garnier et fils"}, {"codeCommune": "74010"}
        ),
    )
    assert annecy[0].personne.siret == ficoba.GARNIER_ANNECY


def test_a_name_beginning_the_designation_ranks(session: Session) -> None:
    answers = fs.search_legal_persons(
        session, STORE, fs.LegalPersonCriteria(raison_sociale="Association sportive")
    )
    assert ficoba.TILLEULS_SIRET in {a.personne.siret for a in answers}
    tilleuls = next(a for a in answers if a.personne.siret == ficoba.TILLEULS_SIRET)
    assert tilleuls.score == pytest.approx(90.0)


# --- IBAN checks --------------------------------------------------------------------------------


def test_iban_check_natural_person(session: Session) -> None:
    lucie = fs.NaturalPersonCriteria.from_provider(
        {
            "nom": "martin",
            "prenoms": "Lucie",
            "anneeNaissance": "1990",
            "moisNaissance": "03",
            "jourNaissance": "14",
        },
        {"codePaysNaissance": "99100", "codeDepartementNaissance": "69"},
    )
    check = fs.verify_iban_natural_person(session, STORE, ficoba.IBAN_MARTIN, lucie)
    assert (check.iban_existant, check.concordant, check.score) == (True, True, 100.0)
    assert check.date_cloture is None
    closed = fs.verify_iban_natural_person(session, STORE, ficoba.IBAN_MARTIN_CLOSED, lucie)
    assert closed.concordant
    assert closed.date_cloture == dt.date(YEAR - 8, 8, 31)
    # An IBAN that exists but belongs to someone else.
    other = fs.verify_iban_natural_person(
        session, STORE, ficoba.IBAN_MARTIN, _pp(nom="Dupont", prenoms="Jean")
    )
    assert (other.iban_existant, other.concordant) == (True, False)
    # A co-holder is a holder; a proxy is not.
    camille = _pp(nom="Petit", prenoms="Camille")
    assert fs.verify_iban_natural_person(
        session, STORE, ficoba.IBAN_BERNARD_JOINT, camille
    ).concordant
    paul = _pp(nom="Leroy", prenoms="Paul")
    assert not fs.verify_iban_natural_person(session, STORE, ficoba.IBAN_BONNET, paul).concordant
    unknown = ficoba.french_iban("99101", "00010", "12345678901")
    nobody = fs.verify_iban_natural_person(session, STORE, unknown, lucie)
    assert (nobody.iban_existant, nobody.concordant, nobody.compte) == (False, False, None)


def test_iban_check_legal_person_and_siret(session: Session) -> None:
    garnier = fs.LegalPersonCriteria(raison_sociale="Garnier et fils")
    assert fs.verify_iban_legal_person(
        session, STORE, ficoba.IBAN_GARNIER_SIEGE, garnier
    ).concordant
    assert not fs.verify_iban_legal_person(session, STORE, ficoba.IBAN_TILLEULS, garnier).concordant
    assert not fs.verify_iban_legal_person(session, STORE, ficoba.IBAN_MARTIN, garnier).concordant
    siret = fs.verify_iban_siret(
        session, STORE, ficoba.IBAN_GARNIER_SIEGE, siret=ficoba.GARNIER_SIEGE
    )
    assert siret.concordant
    assert fs.verify_iban_siret(
        session, STORE, ficoba.IBAN_GARNIER_SIEGE, siren=ficoba.GARNIER_SIREN
    ).concordant
    other = fs.verify_iban_siret(
        session, STORE, ficoba.IBAN_GARNIER_SIEGE, siret=ficoba.GARNIER_ANNECY
    )
    assert (other.iban_existant, other.concordant) == (True, False)


# --- multi-holding ------------------------------------------------------------------------


def test_multi_holding(session: Session) -> None:
    sophie = _pp(
        nom="Lefevre",
        prenoms="Sophie",
        anneeNaissance="1979",
        moisNaissance="01",
        jourNaissance="30",
    )
    found = fs.multi_holding_natural_person(session, STORE, sophie, NATURE_LIVRET_A)
    assert [p.id for p in found.personnes]
    assert len(found.comptes) == 2
    assert {a.etablissement.code for a in found.comptes} == {"99101", "99103"}
    assert found.comptes[0].provider_multi_detention()["nature"] == "3"
    hugo = _pp(
        nom="Fournier",
        prenoms="Hugo",
        anneeNaissance="1995",
        moisNaissance="12",
        jourNaissance="01",
    )
    assert fs.multi_holding_natural_person(session, STORE, hugo, NATURE_LIVRET_A).comptes == ()
    lucie = _pp(
        nom="Martin", prenoms="Lucie", anneeNaissance="1990", moisNaissance="03", jourNaissance="14"
    )
    regulated = fs.multi_holding_natural_person(session, STORE, lucie)  # every regulated nature
    assert sorted(a.nature for a in regulated.comptes) == [3, 4]
    association = fs.multi_holding_legal_person(
        session,
        STORE,
        fs.LegalPersonCriteria(raison_sociale="Association sportive des Tilleuls"),
        3,
    )
    assert len(association.comptes) == 2
    by_siret = fs.multi_holding_siret(session, STORE, siret=ficoba.TILLEULS_SIRET, nature=3)
    assert [a.iban for a in by_siret.comptes] == [a.iban for a in association.comptes]
    assert fs.multi_holding_siret(session, STORE, siren=ficoba.GARNIER_SIREN).comptes == ()
    nobody = fs.multi_holding_natural_person(session, STORE, _pp(nom="Zzyzx"), 3)
    assert nobody == fs.MultiHolding((), ())


# --- the provider's shapes ----------------------------------------------------------------------


def _resolved(node: Any, schemas: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _resolved(schemas[node["$ref"].rsplit("/", 1)[1]], schemas)
        return {k: _resolved(v, schemas) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolved(v, schemas) for v in node]
    return node


def test_what_the_searches_give_has_the_provider_s_shapes(session: Session) -> None:
    document = json.loads((contracts_folder() / "api-ficoba.json").read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]

    def errors(name: str, body: Any) -> list[Any]:
        return provider_errors(_resolved(schemas[name], schemas), body, nullable=())

    for spi in (ir.SINGLE.spi, ir.FULL_1.spi, ir.DECEASED.spi, ir.ABROAD.spi):
        (answer,) = fs.search_by_spi(session, STORE, spi)
        assert errors("PersonnePhysique", answer.personne.provider(99.5)) == []
        for account in answer.comptes:
            assert errors("CompteStructure", account.provider()) == []
            assert errors("CompteMultiDet", account.provider_multi_detention()) == []
    for siren in (ficoba.GARNIER_SIREN, ficoba.TILLEULS_SIREN, ficoba.MOREAU_EI_SIREN):
        for answer_pm in fs.search_by_siret_siren(session, STORE, siren=siren):
            assert errors("PersonneMorale", answer_pm.personne.provider(100.0)) == []
            for account in answer_pm.comptes:
                assert errors("CompteStructure", account.provider()) == []
    (muller,) = fs.search_natural_persons(session, STORE, _pp(nom="Muller", prenoms="Hans"))
    assert muller.personne.provider()["adresse"]["codePaysResidence"] == "99109"
    assert muller.comptes[0].provider()["caracteristiqueCompte"]["resident"] == "N"
    assert "numeroSpi" not in muller.personne.provider()


def test_sqlite_similarity_is_postgresql_s(session: Session) -> None:
    if session.connection().dialect.name != "postgresql":
        pytest.skip("compares with pg_trgm")
    pairs = [("DUPONT", "DUPOND"), ("JEAN", "JEAN PIERRE"), ("GARNIER ET FILS", "GARNIER"),
             ("LEFEVRE", "LEFEBVRE"), ("A", "B C"), ("DASILVA", "SILVA")]  # fmt: skip
    for a, b in pairs:
        expected = session.scalar(text("SELECT similarity(:a, :b)"), {"a": a, "b": b})
        assert fs.trigram_similarity(a, b) == pytest.approx(expected, abs=1e-6), (a, b)

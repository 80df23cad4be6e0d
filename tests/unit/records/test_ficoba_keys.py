"""FICOBA without a database: name keys, the similarity both databases compute, and the
parsing of the provider's search criteria (400 naming the field)."""

from __future__ import annotations

import datetime as dt

import pytest

from guichet.errors import ParameterInvalid
from guichet.records.ficoba import designation_key, person_key, phonetic_key, words_key
from guichet.records.ficoba_search import (
    LegalPersonCriteria,
    NaturalPersonCriteria,
    parse_iban,
    parse_nature,
    parse_siren_siret,
    trigram_similarity,
)
from guichet.sandbox import ficoba


@pytest.mark.parametrize(
    "variants",
    [
        ("Lefèvre", "LEFEVRE", "lefevre", "Le-Fèvre", "le fevre", " LE FÈVRE "),
        ("Da Silva", "da-silva", "DASILVA", "Da  Silva", "da’silva"),
        ("Lefèvre-d’Ornano", "LEFEVRE D ORNANO", "lefevredornano"),
        ("Œuvray", "OEUVRAY"),
    ],
)
def test_accents_case_hyphens_and_spaces_make_one_key(variants: tuple[str, ...]) -> None:
    assert len({person_key(v) for v in variants}) == 1


def test_first_names_keep_their_words() -> None:
    assert words_key("Jean-Pierre") == words_key("jean pierre") == "JEAN PIERRE"
    assert words_key("Élise  Marie") == "ELISE MARIE"


def test_designations_drop_their_legal_form() -> None:
    assert designation_key("Garnier & Fils S.A.R.L.") == "GARNIER FILS"
    assert designation_key("SARL Garnier et fils") == "GARNIER FILS"
    assert designation_key("Association des amis de la place") == "ASSOCIATION AMIS PLACE"
    assert designation_key("SCI") == "SCI"  # only a legal form: kept


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Dupont", "Dupond"),
        ("Lefebvre", "Lefèvre"),
        ("Bonnet", "Bonet"),
        ("Gauthier", "Gautier"),
        ("Philippe", "Filippe"),
        ("Thomas", "Tomas"),
        ("Girard", "Girart"),
    ],
)
def test_sound_alikes_share_a_phonetic_key(a: str, b: str) -> None:
    assert phonetic_key(a) == phonetic_key(b)


def test_different_names_keep_different_phonetic_keys() -> None:
    keys = {phonetic_key(n) for n in ("Martin", "Bernard", "Dubois", "Durand", "Petit")}
    assert len(keys) == 5
    assert phonetic_key("") == ""


def test_similarity_is_pg_trgm_s() -> None:
    # pg_trgm: "DUPONT" and "DUPOND" share 5 of their 9 distinct trigrams.
    assert trigram_similarity("DUPONT", "DUPOND") == pytest.approx(5 / 9)
    assert trigram_similarity("JEAN", "JEAN") == 1.0
    assert trigram_similarity("JEAN", "") == 0.0
    assert trigram_similarity(None, "JEAN") is None


def test_natural_person_criteria_from_the_provider_s_members() -> None:
    c = NaturalPersonCriteria.from_provider(
        {"nom": " Lefèvre ", "prenoms": "Sophie", "sexe": "2", "anneeNaissance": "1979"},
        {
            "codePaysNaissance": "99100",
            "codeDepartementNaissance": "059",
            "codeCommuneNaissance": "350",
        },
        {
            "codeNatureVoie": "rue",
            "libelleVoie": "Nationale",
            "numeroVoie": "007",
            "indiceRepetition": "bis",
        },
    )
    assert (c.nom, c.sexe, c.ne_du, c.ne_au) == (
        " Lefèvre ".strip(),
        "F",
        dt.date(1979, 1, 1),
        dt.date(1979, 12, 31),
    )
    assert (c.departement_naissance, c.commune_naissance) == ("59", "350")
    assert c.adresse is not None
    assert (c.adresse.nature_voie, c.adresse.libelle_voie, c.adresse.numero_voie) == (
        "RUE",
        "NATIONALE",
        "7",
    )
    assert c.adresse.indice_repetition == "B"
    month = NaturalPersonCriteria.from_provider(
        {"nom": "X", "anneeNaissance": "2024", "moisNaissance": "2"}
    )
    assert (month.ne_du, month.ne_au) == (dt.date(2024, 2, 1), dt.date(2024, 2, 29))
    span = NaturalPersonCriteria.from_provider(
        {
            "nom": "X",
            "anneeNaissanceDebut": "1975",
            "moisNaissanceDebut": "06",
            "anneeNaissanceFin": "1976",
        }
    )
    assert (span.ne_du, span.ne_au) == (dt.date(1975, 6, 1), dt.date(1976, 12, 31))
    cog = NaturalPersonCriteria.from_provider({"nom": "X"}, {"codeCommuneNaissance": "2A004"})
    assert (cog.departement_naissance, cog.commune_naissance) == ("2A", "004")


@pytest.mark.parametrize(
    ("etat_civil", "field"),
    [
        ({}, "criteresRecherche.etatCivil.nom"),
        ({"nom": " - "}, "criteresRecherche.etatCivil.nom"),
        ({"nom": 12}, "criteresRecherche.etatCivil.nom"),
        ({"nom": "X", "sexe": "H"}, "criteresRecherche.etatCivil.sexe"),
        ({"nom": "X", "anneeNaissance": "75"}, "criteresRecherche.etatCivil.anneeNaissance"),
        (
            {"nom": "X", "anneeNaissance": "1975", "moisNaissance": "13"},
            "criteresRecherche.etatCivil.moisNaissance",
        ),
        (
            {"nom": "X", "anneeNaissance": "1975", "moisNaissance": "02", "jourNaissance": "30"},
            "criteresRecherche.etatCivil.jourNaissance",
        ),
        (
            {"nom": "X", "anneeNaissance": "1975", "jourNaissance": "3"},
            "criteresRecherche.etatCivil.moisNaissance",
        ),
        (
            {"nom": "X", "anneeNaissance": "1975", "anneeNaissanceDebut": "1970"},
            "criteresRecherche.etatCivil.anneeNaissanceDebut",
        ),
        (
            {"nom": "X", "anneeNaissanceDebut": "1980", "anneeNaissanceFin": "1970"},
            "criteresRecherche.etatCivil.anneeNaissanceFin",
        ),
    ],
)
def test_bad_natural_person_criteria_name_their_field(
    etat_civil: dict[str, object], field: str
) -> None:
    with pytest.raises(ParameterInvalid) as caught:
        NaturalPersonCriteria.from_provider(etat_civil)
    assert caught.value.field == field
    assert caught.value.detail  # a French sentence


@pytest.mark.parametrize(
    ("domiciliation", "field"),
    [
        ({"codePays": "FR"}, "codePays"),
        ({"codeDepartement": "7"}, "codeDepartement"),
        ({"codeCommune": "1"}, "codeCommune"),
        ({"codePostal": "750"}, "codePostal"),
        ({"numeroVoie": "12b"}, "numeroVoie"),
        ({"indiceRepetition": "X"}, "indiceRepetition"),
        ({"codeNatureVoie": "BOULEVARDS"}, "codeNatureVoie"),
    ],
)
def test_bad_addresses_name_their_field(domiciliation: dict[str, str], field: str) -> None:
    with pytest.raises(ParameterInvalid) as caught:
        NaturalPersonCriteria.from_provider({"nom": "X"}, None, domiciliation)
    assert caught.value.field == f"criteresRecherche.domiciliation.{field}"


def test_legal_person_criteria() -> None:
    c = LegalPersonCriteria.from_provider(
        {"raisonSociale": "Garnier et Fils", "codeCategorieJuridique": "54"},
        {"codeCommune": "67482"},
    )
    assert c.categorie_juridique == "54"
    assert c.adresse is not None
    assert (c.adresse.departement, c.adresse.commune) == ("67", "482")
    with pytest.raises(ParameterInvalid) as caught:
        LegalPersonCriteria.from_provider({"codeCategorieJuridique": "5499"})
    assert caught.value.field == "criteresRecherche.designation.raisonSociale"
    with pytest.raises(ParameterInvalid) as caught:
        LegalPersonCriteria.from_provider({"sigle": "GEF", "codeCategorieJuridique": "549"})
    assert caught.value.field == "criteresRecherche.designation.codeCategorieJuridique"


def test_identifiers() -> None:
    assert parse_iban(" fr76 9910 1000 5090 0000 0000 185 ") == "FR7699101000509000000000185"
    for bad in ("FR7699101000509000000000186", "", None, 42):
        with pytest.raises(ParameterInvalid):
            parse_iban(bad)
    assert parse_siren_siret(None, ficoba.GARNIER_SIREN) == (None, ficoba.GARNIER_SIREN)
    assert parse_siren_siret(ficoba.GARNIER_SIEGE, "") == (ficoba.GARNIER_SIEGE, None)
    for siret, siren, field in (
        (None, None, "criteresRecherche.siret"),
        (None, "900000018", "criteresRecherche.siren"),
        ("90000001900018", None, "criteresRecherche.siret"),
        (ficoba.GARNIER_SIEGE, ficoba.TILLEULS_SIREN, "criteresRecherche.siren"),
    ):
        with pytest.raises(ParameterInvalid) as caught:
            parse_siren_siret(siret, siren)
        assert caught.value.field == field
    assert parse_nature("3") == 3
    assert parse_nature(None) is None
    with pytest.raises(ParameterInvalid):
        parse_nature("99")

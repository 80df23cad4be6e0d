"""Fixed personas inserted by every seed: one per outcome partners must be able to test.

``docs/sandbox.md`` shows the same table. Persona SPIs start with ``3000000`` or are the
provider's shared test SPIs (``39999999…``); generated households never start with ``3``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from guichet.sandbox.fiscal import Pac, ifi_record
from guichet.sandbox.household import Address, Declarant, Situation


@dataclass(frozen=True, slots=True)
class Persona:
    key: str
    spi: str
    who: str
    purpose: str  # what it lets a partner test, in the portal's French


def _d(
    spi: str, sexe: str, nom: str, prenoms: str, born: str, commune: str | None, **kw: Any
) -> Declarant:
    return Declarant(spi, sexe, nom, prenoms, dt.date.fromisoformat(born), commune, **kw)


SINGLE = _d("3000000001250", "F", "Martin", "Lucie", "1990-03-14", "69381")
COUPLE_1 = _d("3000000002251", "M", "Bernard", "Nicolas Paul", "1982-11-02", "33063")
COUPLE_2 = _d("3000000003252", "F", "Petit", "Camille", "1984-06-21", "44109", nom_usage="Bernard")
FAMILY = _d("3000000004253", "F", "Lefèvre", "Sophie Anne", "1979-01-30", "59350")
DEFICIT = _d("3000000005254", "M", "Moreau", "Julien", "1971-09-09", "31555")
NO_N1 = _d("3000000006255", "M", "Fournier", "Hugo", "1995-12-01", "35238")
BRIDE = _d("3000000007256", "F", "Roux", "Julie Marie", "1992-04-17", "13201")
GROOM = _d("3000000008257", "M", "Girard", "Thomas", "1991-02-05", "06088")
SECRET = _d("3000000009258", "F", "Mercier", "Élise", "1968-07-12", "75115", communicable=False)
HOMONYM_1 = _d("3000000010259", "M", "Dupont", "Jean", "1975-05-05", "75111")
HOMONYM_2 = _d("3000000011260", "M", "Dupont", "Jean", "1975-05-05", "75111")
NO_TAX = _d("3000000012261", "F", "Blanc", "Chloé", "2004-10-10", "38185")
ABROAD = _d("3000000013262", "M", "Da Silva", "Pedro", "1980-08-08", None, pays_naissance="99139")
FULL_1 = _d("3000000014263", "M", "Garnier", "Louis Henri", "1958-02-28", "67482")
FULL_2 = _d("3000000015264", "F", "Chevalier", "Marie", "1960-12-24", "67482", nom_usage="Garnier")
PENDING = _d("3000000016265", "F", "Lambert", "Inès", "1988-05-19", "34172")
SHARED_SPOUSE_1 = _d(
    "3000000017266", "F", "Robert", "Nathalie", "1977-03-03", "21231", nom_usage="Durand"
)
SHARED_SPOUSE_2 = _d("3000000018267", "M", "Faure", "Antoine", "1986-09-14", "38185")
DUBOIS = _d("3000000019268", "F", "Dubois", "Angela Claire Louise", "1962-08-24", "75107")
SHARED_30262 = _d("3999999930262", "M", "Leroy", "Paul", "1985-01-15", "75118")
SHARED_15247 = _d("3999999915247", "M", "Durand", "Philippe", "1976-10-08", "21231")
SHARED_23255 = _d("3999999923255", "F", "Bonnet", "Jeanne", "1946-06-06", "87085")
SHARED_31263 = _d("3999999931263", "F", "Roche", "Emma", "1989-11-30", "38185")
# Julie ROUX's flat, her address until she married in N-1.
BRIDE_FLAT = Address("6 rue Sainte", "13201")

PERSONAS: tuple[Persona, ...] = (
    Persona(
        "single",
        SINGLE.spi,
        "Lucie MARTIN",
        "Célibataire, une part, salaires seulement ; pas éligible au LEP en métropole.",
    ),
    Persona(
        "couple-1",
        COUPLE_1.spi,
        "Nicolas BERNARD",
        "Couple marié, déclarant 1 ; avis N-1 non soldé (reste à payer).",
    ),
    Persona(
        "couple-2",
        COUPLE_2.spi,
        "Camille PETIT ép. BERNARD",
        "Couple marié, déclarante 2 : le même foyer.",
    ),
    Persona(
        "family",
        FAMILY.spi,
        "Sophie LEFEVRE",
        "Parent isolé (case T) : un enfant à charge exclusive, deux en résidence alternée.",
    ),
    Persona("deficit", DEFICIT.spi, "Julien MOREAU", "Déficit foncier : indDeficit à 1."),
    Persona(
        "no-n-1",
        NO_N1.spi,
        "Hugo FOURNIER",
        "Pas de déclaration en N-1 (404) ; N-2 avec le scope d'année de repli.",
    ),
    Persona(
        "marriage-1",
        BRIDE.spi,
        "Julie ROUX",
        "Mariée en N-1 : rang 1 célibataire, rang 2 le couple.",
    ),
    Persona(
        "marriage-2",
        GROOM.spi,
        "Thomas GIRARD",
        "Le conjoint de Julie ROUX, les deux mêmes situations en N-1.",
    ),
    Persona("not-communicable", SECRET.spi, "Élise MERCIER", "R2P : fiche non communicable (403)."),
    Persona(
        "homonym-1",
        HOMONYM_1.spi,
        "Jean DUPONT",
        "Homonyme R2P : état civil → 403, trop de réponses.",
    ),
    Persona("homonym-2", HOMONYM_2.spi, "Jean DUPONT", "Homonyme R2P du précédent."),
    Persona(
        "no-tax-record", NO_TAX.spi, "Chloé BLANC", "Connue de R2P, sans dossier fiscal : IR 404."
    ),
    Persona(
        "born-abroad",
        ABROAD.spi,
        "Pedro DA SILVA",
        "Né au Portugal (COG 99139) : R2P sans département ni commune.",
    ),
    Persona(
        "full-record",
        FULL_1.spi,
        "Louis GARNIER",
        "Couple dont chaque champ et chaque catégorie de revenus sont renseignés ; "
        "redevable de l'IFI.",
    ),
    Persona(
        "full-record-2",
        FULL_2.spi,
        "Marie CHEVALIER ép. GARNIER",
        "Déclarante 2 du dossier complet.",
    ),
    Persona(
        "rfr-null",
        PENDING.spi,
        "Inès LAMBERT",
        "Déclaration N-1 pas encore traitée : rfr et revenuBrutGlobal à null.",
    ),
    Persona(
        "shared-30262",
        SHARED_30262.spi,
        "Paul LEROY",
        "SPI de test partagé du fournisseur : célibataire, une part.",
    ),
    Persona(
        "shared-15247",
        SHARED_15247.spi,
        "Philippe DURAND",
        "SPI de test partagé du fournisseur : marié, deux enfants.",
    ),
    Persona(
        "shared-15247-spouse",
        SHARED_SPOUSE_1.spi,
        "Nathalie ROBERT ép. DURAND",
        "Déclarante 2 de 3999999915247.",
    ),
    Persona(
        "shared-23255",
        SHARED_23255.spi,
        "Jeanne BONNET",
        "SPI de test partagé du fournisseur : veuve, pensions ; éligible au LEP.",
    ),
    Persona(
        "shared-31263",
        SHARED_31263.spi,
        "Emma ROCHE",
        "SPI de test partagé du fournisseur : pacsée, un enfant.",
    ),
    Persona(
        "shared-31263-partner",
        SHARED_SPOUSE_2.spi,
        "Antoine FAURE",
        "Déclarant 2 de 3999999931263.",
    ),
    Persona(
        "dubois",
        DUBOIS.spi,
        "Angela Claire Louise DUBOIS",
        "La citoyenne de test de la fédération, divorcée, une part ; "
        "un remboursement sur son avis.",
    ),
)

PERSONA_SPIS = frozenset(p.spi for p in PERSONAS)


def _single(
    foyer: str, d: Declarant, street: str, commune: str, salary: int, **kw: Any
) -> Situation:
    return Situation(
        foyer, (d,), kw.pop("sit_fam", "C"), Address(street, commune), salaires=(salary,), **kw
    )


def _grower(offset: int) -> Callable[[int], int]:
    """Amounts grow about 3 % a year: N-1 is the base, N-3 the smallest."""
    return lambda amount: round(amount * (1 - 0.03 * (offset - 1)))


def situations(reference_year: int) -> list[tuple[int, int, Situation]]:
    """Every persona situation as (annrev, rang, situation)."""
    out: list[tuple[int, int, Situation]] = []
    years = [(reference_year - k, k) for k in (1, 2, 3)]
    paris = "75107"
    for annrev, k in years:
        g = _grower(k)
        out += [
            (annrev, 1, _single("PER-SINGLE", SINGLE, "4 rue Mercière", "69381", g(31_000))),
            (
                annrev,
                1,
                Situation(
                    "PER-COUPLE",
                    (COUPLE_1, COUPLE_2),
                    "M",
                    Address("18 cours de l'Intendance", "33063"),
                    salaires=(g(42_000), g(36_500)),
                    rcm=g(420),
                    # N-1's notice: withholding took 70 % of the tax, the balance is unpaid.
                    withheld_share=0.7 if k == 1 else 1.0,
                    paid=k != 1,
                ),
            ),
            (
                annrev,
                1,
                Situation(
                    "PER-FAMILY",
                    (FAMILY,),
                    "D",
                    Address("7 rue Nationale", "59350", "Bâtiment B"),
                    pac=Pac(F=1, H=2),
                    parent_isole=True,
                    salaires=(g(29_800),),
                    pens_al_per=g(2_400),
                ),
            ),
            (
                annrev,
                1,
                _single(
                    "PER-DEFICIT",
                    DEFICIT,
                    "21 allée Jean Jaurès",
                    "31555",
                    g(25_000),
                    deficit_foncier=g(8_500),
                ),
            ),
            (annrev, 1, _single("PER-SECRET", SECRET, "3 rue Lecourbe", "75115", g(38_000))),
            (annrev, 1, _single("PER-DUPONT-1", HOMONYM_1, "12 rue Oberkampf", "75111", g(27_000))),
            (
                annrev,
                1,
                _single("PER-DUPONT-2", HOMONYM_2, "40 boulevard Voltaire", "75111", g(44_000)),
            ),
            (annrev, 1, _single("PER-ABROAD", ABROAD, "9 rue Lamartine", "37261", g(23_500))),
            (
                annrev,
                1,
                Situation(
                    "PER-FULL",
                    (FULL_1, FULL_2),
                    "M",
                    Address("2 quai des Bateliers", "67482", "Appartement 12"),
                    pac=Pac(F=1, G=1, H=1, I=1, R=1, J=1, N=1, P=1),
                    salaires=(g(52_000), 0),
                    pensions=(0, g(21_000)),
                    rcm=g(1_200),
                    pv=g(3_400),
                    fonc=g(6_000),
                    pro=g(9_000),
                    alpha=g(150),
                    chges=g(900),
                    rici=g(300),
                    div=g(2_100),
                    pens_al_per=g(600),
                    withheld_share=0.8,  # a balance each year, paid by the deadline
                ),
            ),
            (
                annrev,
                1,
                _single(
                    "PER-PENDING",
                    PENDING,
                    "5 place de la Comédie",
                    "34172",
                    g(33_000),
                    rfr_known=k != 1,
                ),
            ),
            (annrev, 1, _single("PER-30262", SHARED_30262, "30 rue Ordener", "75118", g(35_200))),
            (
                annrev,
                1,
                Situation(
                    "PER-15247",
                    (SHARED_15247, SHARED_SPOUSE_1),
                    "M",
                    Address("15 rue de la Liberté", "21231"),
                    pac=Pac(F=2),
                    salaires=(g(39_000), g(24_000)),
                ),
            ),
            (
                annrev,
                1,
                Situation(
                    "PER-23255",
                    (SHARED_23255,),
                    "V",
                    Address("23 avenue Baudin", "87085"),
                    pensions=(g(19_800),),
                ),
            ),
            (
                annrev,
                1,
                Situation(
                    "PER-31263",
                    (SHARED_31263, SHARED_SPOUSE_2),
                    "O",
                    Address("31 cours Berriat", "38185"),
                    pac=Pac(F=1),
                    salaires=(g(28_500), g(31_000)),
                ),
            ),
            (
                annrev,
                1,
                Situation(
                    "PER-DUBOIS",
                    (DUBOIS,),
                    "D",
                    Address("20 avenue de Ségur", paris),
                    salaires=(g(41_000),),
                    withheld_share=1.15,  # withholding took too much: a refund
                ),
            ),
        ]
        if k != 1:
            out.append(
                (annrev, 1, _single("PER-NO-N-1", NO_N1, "1 rue de Paris", "35238", g(21_000)))
            )
        if k == 1:
            # Married during the year: each spouse's situation until the wedding, then the couple's.
            out += [
                (
                    annrev,
                    1,
                    _single(
                        "PER-ROUX",
                        BRIDE,
                        BRIDE_FLAT.voie,
                        BRIDE_FLAT.commune_cog,
                        14_000,
                        option_impot_separe=True,
                    ),
                ),
                (
                    annrev,
                    1,
                    _single(
                        "PER-GIRARD",
                        GROOM,
                        "10 rue de France",
                        "06088",
                        16_500,
                        option_impot_separe=True,
                    ),
                ),
                (
                    annrev,
                    2,
                    Situation(
                        "PER-ROUX-GIRARD",
                        (BRIDE, GROOM),
                        "M",
                        Address("10 rue de France", "06088"),
                        salaires=(18_000, 20_500),
                    ),
                ),
            ]
        else:
            out += [
                (
                    annrev,
                    1,
                    _single("PER-ROUX", BRIDE, BRIDE_FLAT.voie, BRIDE_FLAT.commune_cog, g(31_000)),
                ),
                (annrev, 1, _single("PER-GIRARD", GROOM, "10 rue de France", "06088", g(36_000))),
            ]
    return out


def declarants() -> list[tuple[Declarant, Address]]:
    """Every persona as a person, with their current address (the no-tax-record one included)."""
    latest: dict[str, tuple[Declarant, Address]] = {}
    for _annrev, _rang, situation in sorted(situations(2000), key=lambda t: (t[0], t[1])):
        for d in situation.declarants:
            latest[d.spi] = (d, situation.address)
    latest[NO_TAX.spi] = (NO_TAX, Address("8 place Grenette", "38185"))
    return list(latest.values())


def rows(store: str, reference_year: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(person rows, ir_situation rows) of every persona."""
    persons = [d.person_row(store, address) for d, address in declarants()]
    situation_rows = [
        row for annrev, rang, s in situations(reference_year) for row in s.rows(store, annrev, rang)
    ]
    return persons, situation_rows


# The GARNIERs' real estate, net taxable value in N-1 (IFI-liable every year).
GARNIER_PATRIMOINE = 1_850_000


def ifi_rows(store: str, reference_year: int) -> list[dict[str, Any]]:
    """The personas' IFI declarations: the GARNIER household's, N-1 to N-3."""
    rows = []
    for k in (1, 2, 3):
        record = ifi_record(_grower(k)(GARNIER_PATRIMOINE))
        rows += [
            {
                "store": store,
                "spi": d.spi,
                "annrev": reference_year - k,
                "foyer": "PER-FULL",
                "record": record,
            }
            for d in (FULL_1, FULL_2)
        ]
    return rows

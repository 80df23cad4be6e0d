"""Fixed personas inserted by every seed: one per outcome partners must be able to test.

``docs/sandbox.md`` shows the same table. Persona SPIs start with ``3000000`` or are the
provider's shared test SPIs (``39999999…``); generated households never start with ``3``.

A year a marriage, a divorce or a death splits has one situation per part of it (rang 1,
2 in date order), each with its period (``dateDebutPeriode``, ``dateFinPeriode``): the
situation the event ends stops the day before it (a death: on the day), the new one
starts on the day (a death: the day after).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

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
DECEASED = _d("3000000021270", "M", "Legrand", "Marcel", "1944-05-02", "80021")
WIDOW = _d("3000000022271", "F", "Gauthier", "Monique", "1947-10-09", "80021", nom_usage="Legrand")
RECTIFIED = _d("3000000023272", "M", "Haddad", "Karim", "1987-02-11", "69383")
EX_HUSBAND = _d("3000000024273", "M", "Marchand", "Sébastien", "1983-07-25", "49007")
EX_WIFE = _d("3000000025274", "F", "Colin", "Aurélie", "1985-12-03", "57463", nom_usage="Marchand")
# Aurélie COLIN after the divorce: her birth name only.
EX_WIFE_DIVORCED = dataclasses.replace(EX_WIFE, nom_usage=None)
# Julie ROUX's flat, her address until she married in N-1.
BRIDE_FLAT = Address("6 rue Sainte", "13201")
# The events of N-1 (month, day): Julie ROUX and Thomas GIRARD's wedding, Marcel
# LEGRAND's death, the MARCHANDs' divorce.
WEDDING = (6, 14)
DEATH = (3, 17)
DIVORCE = (10, 1)

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
    Persona("deficit", DEFICIT.spi, "Julien MOREAU", 'Déficit foncier : indDeficit à "1".'),
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
        "Mariée le 14 juin N-1 : rang 1 célibataire jusqu'au 13 juin, rang 2 le couple "
        "à partir du 14 (dateDebutPeriode, dateFinPeriode).",
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
    Persona(
        "deceased",
        DECEASED.spi,
        "Marcel LEGRAND",
        "Décédé le 17 mars N-1 : en N-1, la seule situation du couple, du 1er janvier "
        "au 17 mars, avec dateDecesdec1.",
    ),
    Persona(
        "widow",
        WIDOW.spi,
        "Monique GAUTHIER ép. LEGRAND",
        "Veuve en N-1 : rang 1 le couple jusqu'au décès de son mari (dateDecesdec1), "
        "rang 2 elle seule (V, deux parts l'année du décès) du 18 mars au 31 décembre.",
    ),
    Persona(
        "rectified",
        RECTIFIED.spi,
        "Karim HADDAD",
        "Deux avis en N-1 : rang 1 l'avis initial (typeAvis 1), rang 2 l'avis "
        "rectificatif (typeAvis 2) après des revenus oubliés ; la dernière situation est "
        "le rectificatif.",
    ),
    Persona(
        "divorce-1",
        EX_HUSBAND.spi,
        "Sébastien MARCHAND",
        "Divorcé le 1er octobre N-1 : rang 1 le couple jusqu'au 30 septembre, rang 2 lui "
        "seul (D, un enfant en résidence alternée, parent isolé).",
    ),
    Persona(
        "divorce-2",
        EX_WIFE.spi,
        "Aurélie COLIN",
        "Son ex-épouse : rang 1 le même couple (nom d'usage MARCHAND), rang 2 elle seule, "
        "sans nom d'usage.",
    ),
)

# Personas added after the first table: their premises are numbered after the others', so
# those keep their invariants.
# Offered on every sign-in page of the sandbox federation (SPI, label): the federation's
# well-known test citizen and the provider's four shared test SPIs (DESIGN), so that
# partners' existing tests keep working.
SIGN_IN_SUGGESTIONS: Final = (
    (DUBOIS.spi, "Angela Claire Louise DUBOIS, née le 24/08/1962"),
    (SHARED_30262.spi, "Paul LEROY — célibataire, une part"),
    (SHARED_15247.spi, "Philippe DURAND — marié, deux enfants"),
    (SHARED_23255.spi, "Jeanne BONNET — veuve, pensions"),
    (SHARED_31263.spi, "Emma ROCHE — pacsée, un enfant"),
)

LATER_PERSONA_SPIS = frozenset(d.spi for d in (DECEASED, WIDOW, RECTIFIED, EX_HUSBAND, EX_WIFE))

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
            wedding = dt.date(annrev, *WEDDING)
            before: dict[str, Any] = {"fin": wedding - dt.timedelta(days=1)}
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
                        **before,
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
                        **before,
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
                        debut=wedding,
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
        out += _events(annrev, k, g)
    return out


_LEGRAND = Address("12 rue des Jacobins", "80021")
_MARCHAND = Address("22 boulevard Foch", "49007")


def _events(annrev: int, k: int, g: Callable[[int], int]) -> list[tuple[int, int, Situation]]:
    """The personas whose N-1 has two situations: a death, a rectifying notice, a divorce;
    N-2 and N-3 have one, for the whole year."""
    couple = Situation(
        "PER-LEGRAND", (DECEASED, WIDOW), "M", _LEGRAND, pensions=(g(24_000), g(14_000))
    )
    haddad = _single("PER-HADDAD", RECTIFIED, "8 rue Paul Bert", "69383", g(36_000))
    marchand = Situation(
        "PER-MARCHAND",
        (EX_HUSBAND, EX_WIFE),
        "M",
        _MARCHAND,
        pac=Pac(F=1),
        salaires=(g(38_000), g(30_000)),
    )
    if k != 1:
        return [(annrev, 1, couple), (annrev, 1, haddad), (annrev, 1, marchand)]
    death = dt.date(annrev, *DEATH)
    divorce = dt.date(annrev, *DIVORCE)
    # The rectifying notice adds what the initial one missed: interest and rents. What
    # withholding took stays taken; the supplement is still to pay.
    initial_tax = int(haddad.record(annrev)["montTotIr"])
    rectified = dataclasses.replace(
        haddad,
        rcm=2_400,
        fonc=4_800,
        type_avis=2,
        etabli=dt.date(annrev + 1, 11, 14),
        withheld=initial_tax,
        paid=False,
    )
    after_divorce: dict[str, Any] = {
        "sit_fam": "D",
        "pac": Pac(H=1),
        "parent_isole": True,
        "debut": divorce,
    }
    return [
        (
            annrev,
            1,
            dataclasses.replace(couple, pensions=(5_000, 2_900), fin=death, deces=(death, None)),
        ),
        (
            annrev,
            2,
            Situation(
                "PER-LEGRAND-V",
                (WIDOW,),
                "V",
                _LEGRAND,
                pensions=(17_100,),  # her pension and, from the death, a reversion pension
                debut=death + dt.timedelta(days=1),
                survivant=True,
            ),
        ),
        (annrev, 1, haddad),
        (annrev, 2, rectified),
        (
            annrev,
            1,
            dataclasses.replace(
                marchand, salaires=(28_500, 22_500), fin=divorce - dt.timedelta(days=1)
            ),
        ),
        (
            annrev,
            2,
            _single("PER-MARCHAND-S", EX_HUSBAND, _MARCHAND.voie, "49007", 9_500, **after_divorce),
        ),
        (
            annrev,
            2,
            _single(
                "PER-COLIN", EX_WIFE_DIVORCED, "3 rue Toussaint", "49007", 7_500, **after_divorce
            ),
        ),
    ]


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

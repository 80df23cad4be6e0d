"""Real INSEE COG codes (communes, departments, countries), those the sandbox's fictive
population is born and lives in among them, and how the provider's R2P writes a place and a
street (``AdresseReponse``): R2P's answers, the import and the migrations use them too."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from guichet.records.names import canonical_name

FRANCE: Final = "99100"
# INSEE's department code for a birth abroad (the IR record's ``dptNaissDec``).
ABROAD_DEPARTMENT: Final = "99"


@dataclass(frozen=True, slots=True)
class Commune:
    cog: str
    name: str
    postal_code: str

    @property
    def department(self) -> str:
        """The department (or overseas collectivity) code: three characters overseas (97x,
        98x), two elsewhere (incl. 2A/2B)."""
        return department_of(self.cog)


@dataclass(frozen=True, slots=True)
class Country:
    cog: str
    name: str


def department_of(cog: str) -> str:
    """The department or overseas collectivity of a commune's COG: ``97411`` → ``974``,
    ``98735`` → ``987``, ``2A004`` → ``2A``, ``75107`` → ``75``."""
    return cog[:3] if cog.startswith(("97", "98")) else cog[:2]


def commune_code(cog: str) -> str:
    """The commune code R2P answers: the last three characters of the COG (with the
    department it designates the commune)."""
    return cog[-3:]


def commune_cog(department: str, code: str) -> str:
    """The COG a department (or overseas collectivity) and an R2P commune code designate:
    ``75`` + ``107`` → ``75107``, ``974`` + ``411`` → ``97411``, ``975`` + ``02`` (two
    characters, an overseas collectivity's code) → ``97502``."""
    if len(department) == 3:
        return department + code if len(code) == 2 else department[:2] + code
    return department + code


COMMUNES: Final = tuple(
    Commune(*row)
    for row in (
        ("75107", "PARIS 07", "75007"),
        ("75111", "PARIS 11", "75011"),
        ("75115", "PARIS 15", "75015"),
        ("75118", "PARIS 18", "75018"),
        ("69381", "LYON 01", "69001"),
        ("69383", "LYON 03", "69003"),
        ("13201", "MARSEILLE 01", "13001"),
        ("13208", "MARSEILLE 08", "13008"),
        ("31555", "TOULOUSE", "31000"),
        ("06088", "NICE", "06000"),
        ("44109", "NANTES", "44000"),
        ("67482", "STRASBOURG", "67000"),
        ("34172", "MONTPELLIER", "34000"),
        ("33063", "BORDEAUX", "33000"),
        ("59350", "LILLE", "59000"),
        ("35238", "RENNES", "35000"),
        ("51454", "REIMS", "51100"),
        ("76351", "LE HAVRE", "76600"),
        ("42218", "SAINT-ETIENNE", "42000"),
        ("83137", "TOULON", "83000"),
        ("38185", "GRENOBLE", "38000"),
        ("21231", "DIJON", "21000"),
        ("49007", "ANGERS", "49000"),
        ("30189", "NIMES", "30000"),
        ("63113", "CLERMONT-FERRAND", "63000"),
        ("87085", "LIMOGES", "87000"),
        ("37261", "TOURS", "37000"),
        ("80021", "AMIENS", "80000"),
        ("57463", "METZ", "57000"),
        ("25056", "BESANCON", "25000"),
        ("66136", "PERPIGNAN", "66000"),
        ("45234", "ORLEANS", "45000"),
        ("14118", "CAEN", "14000"),
        ("76540", "ROUEN", "76000"),
        ("54395", "NANCY", "54000"),
        ("64445", "PAU", "64000"),
        ("29019", "BREST", "29200"),
        ("86194", "POITIERS", "86000"),
        ("2A004", "AJACCIO", "20000"),
        ("97411", "SAINT-DENIS", "97400"),
        ("92050", "NANTERRE", "92000"),
        ("93066", "SAINT-DENIS", "93200"),
        ("94028", "CRETEIL", "94000"),
        ("78646", "VERSAILLES", "78000"),
        ("17300", "LA ROCHELLE", "17000"),
        ("72181", "LE MANS", "72000"),
        ("74010", "ANNECY", "74000"),
        ("84007", "AVIGNON", "84000"),
        ("56260", "VANNES", "56000"),
        ("22278", "SAINT-BRIEUC", "22000"),
    )
)


# Every department, as the provider writes its name (upper case, no accents).
DEPARTMENTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "01": "AIN",
        "02": "AISNE",
        "03": "ALLIER",
        "04": "ALPES-DE-HAUTE-PROVENCE",
        "05": "HAUTES-ALPES",
        "06": "ALPES-MARITIMES",
        "07": "ARDECHE",
        "08": "ARDENNES",
        "09": "ARIEGE",
        "10": "AUBE",
        "11": "AUDE",
        "12": "AVEYRON",
        "13": "BOUCHES-DU-RHONE",
        "14": "CALVADOS",
        "15": "CANTAL",
        "16": "CHARENTE",
        "17": "CHARENTE-MARITIME",
        "18": "CHER",
        "19": "CORREZE",
        "2A": "CORSE-DU-SUD",
        "2B": "HAUTE-CORSE",
        "21": "COTE-D'OR",
        "22": "COTES-D'ARMOR",
        "23": "CREUSE",
        "24": "DORDOGNE",
        "25": "DOUBS",
        "26": "DROME",
        "27": "EURE",
        "28": "EURE-ET-LOIR",
        "29": "FINISTERE",
        "30": "GARD",
        "31": "HAUTE-GARONNE",
        "32": "GERS",
        "33": "GIRONDE",
        "34": "HERAULT",
        "35": "ILLE-ET-VILAINE",
        "36": "INDRE",
        "37": "INDRE-ET-LOIRE",
        "38": "ISERE",
        "39": "JURA",
        "40": "LANDES",
        "41": "LOIR-ET-CHER",
        "42": "LOIRE",
        "43": "HAUTE-LOIRE",
        "44": "LOIRE-ATLANTIQUE",
        "45": "LOIRET",
        "46": "LOT",
        "47": "LOT-ET-GARONNE",
        "48": "LOZERE",
        "49": "MAINE-ET-LOIRE",
        "50": "MANCHE",
        "51": "MARNE",
        "52": "HAUTE-MARNE",
        "53": "MAYENNE",
        "54": "MEURTHE-ET-MOSELLE",
        "55": "MEUSE",
        "56": "MORBIHAN",
        "57": "MOSELLE",
        "58": "NIEVRE",
        "59": "NORD",
        "60": "OISE",
        "61": "ORNE",
        "62": "PAS-DE-CALAIS",
        "63": "PUY-DE-DOME",
        "64": "PYRENEES-ATLANTIQUES",
        "65": "HAUTES-PYRENEES",
        "66": "PYRENEES-ORIENTALES",
        "67": "BAS-RHIN",
        "68": "HAUT-RHIN",
        "69": "RHONE",
        "70": "HAUTE-SAONE",
        "71": "SAONE-ET-LOIRE",
        "72": "SARTHE",
        "73": "SAVOIE",
        "74": "HAUTE-SAVOIE",
        "75": "PARIS",
        "76": "SEINE-MARITIME",
        "77": "SEINE-ET-MARNE",
        "78": "YVELINES",
        "79": "DEUX-SEVRES",
        "80": "SOMME",
        "81": "TARN",
        "82": "TARN-ET-GARONNE",
        "83": "VAR",
        "84": "VAUCLUSE",
        "85": "VENDEE",
        "86": "VIENNE",
        "87": "HAUTE-VIENNE",
        "88": "VOSGES",
        "89": "YONNE",
        "90": "TERRITOIRE DE BELFORT",
        "91": "ESSONNE",
        "92": "HAUTS-DE-SEINE",
        "93": "SEINE-SAINT-DENIS",
        "94": "VAL-DE-MARNE",
        "95": "VAL-D'OISE",
        "971": "GUADELOUPE",
        "972": "MARTINIQUE",
        "973": "GUYANE",
        "974": "LA REUNION",
        "976": "MAYOTTE",
    }
)

# The overseas collectivities R2P calls "TOM" (``cdTOM``, ``adrCodeTom``): no department.
TOMS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "975": "ST-PIERRE-ET-MIQUELON",
        "977": "ST-BARTHELEMY",
        "978": "ST-MARTIN",
        "984": "TERRES AUSTRALES ET ANTARCTIQUES FRANCAISES",
        "986": "WALLIS-ET-FUTUNA",
        "987": "POLYNESIE FRANCAISE",
        "988": "NOUVELLE-CALEDONIE",
    }
)

# A few communes of the overseas collectivities, for addresses and births written with
# ``cdTOM``; the generated population never draws from them.
TOM_COMMUNES: Final = tuple(
    Commune(*row)
    for row in (
        ("97502", "SAINT-PIERRE", "97500"),
        ("98735", "PAPEETE", "98714"),
        ("98818", "NOUMEA", "98800"),
    )
)

COMMUNES_BY_COG: Final = {c.cog: c for c in (*COMMUNES, *TOM_COMMUNES)}

COUNTRIES: Final = tuple(
    Country(*row)
    for row in (
        ("99109", "ALLEMAGNE"),
        ("99127", "ITALIE"),
        ("99131", "BELGIQUE"),
        ("99132", "ROYAUME-UNI"),
        ("99134", "ESPAGNE"),
        ("99139", "PORTUGAL"),
        ("99140", "SUISSE"),
        ("99350", "MAROC"),
        ("99351", "TUNISIE"),
        ("99352", "ALGERIE"),
        ("99404", "ETATS-UNIS"),
    )
)

COUNTRIES_BY_COG: Final = {c.cog: c for c in COUNTRIES}


# Street types as the provider abbreviates them (FANTOIR): the first word of ``lbVoie``.
STREET_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "ALLEE": "ALL",
        "AVENUE": "AV",
        "BOULEVARD": "BD",
        "CARREFOUR": "CAR",
        "CHAUSSEE": "CHS",
        "CHEMIN": "CHE",
        "CITE": "CITE",
        "COURS": "CRS",
        "ESPLANADE": "ESP",
        "FAUBOURG": "FG",
        "HAMEAU": "HAM",
        "IMPASSE": "IMP",
        "LOTISSEMENT": "LOT",
        "MONTEE": "MTE",
        "PASSAGE": "PAS",
        "PLACE": "PL",
        "PROMENADE": "PROM",
        "QUAI": "QUAI",
        "QUARTIER": "QUA",
        "RESIDENCE": "RES",
        "ROND-POINT": "RPT",
        "ROUTE": "RTE",
        "RUE": "RUE",
        "RUELLE": "RLE",
        "SENTIER": "SEN",
        "SQUARE": "SQ",
        "TRAVERSE": "TRA",
        "VOIE": "VOIE",
    }
)
_ABBREVIATIONS: Final = frozenset(STREET_TYPES.values())
# A street's name in R2P holds at most 26 characters (``adrLibelleVoie``).
STREET_NAME_LENGTH: Final = 26
_REPETITIONS: Final = {"BIS": "B", "TER": "T", "QUATER": "Q"}
_NUMBERED = re.compile(r"^(\d{1,5})\s*(bis|ter|quater|[a-z])?(?:\s+|\s*,\s*)(.+)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Street:
    """An address line as R2P splits it: ``"4 bis rue Mercière"`` → number ``4``,
    repetition ``B``, type ``RUE``, name ``MERCIERE``."""

    number: str | None
    repetition: str | None
    type: str | None
    name: str

    @classmethod
    def parse(cls, voie: str) -> Street:
        match = _NUMBERED.match(voie.strip())
        number, repetition, rest = match.groups() if match else (None, None, voie)
        label = canonical_name(rest)
        first, _, others = label.partition(" ")
        street_type = STREET_TYPES.get(first) or (first if first in _ABBREVIATIONS else None)
        name = others if street_type is not None and others else label
        if street_type is not None and not others:
            street_type = None
        if repetition is not None:
            repetition = repetition.upper()
            repetition = _REPETITIONS.get(repetition, repetition[0])
        return cls(
            str(int(number)) if number is not None else None,
            repetition,
            street_type,
            name[:STREET_NAME_LENGTH].rstrip(),
        )

    @property
    def label(self) -> str:
        """``lbVoie``: the type's abbreviation, then the name."""
        return f"{self.type} {self.name}" if self.type else self.name


def street_code(commune: str, label: str) -> str:
    """A fictive street code (``cdVoie``, 4 digits), the same for every address of one
    street of one commune; the provider's real codes are FANTOIR's."""
    digest = hashlib.sha256(f"{commune}/{label}".encode()).digest()
    return f"{int.from_bytes(digest[:4], 'big') % 10_000:04d}"


def adresse_reponse(
    *,
    voie: str | None,
    commune: str | None,
    commune_name: str | None = None,
    pays: str = FRANCE,
) -> dict[str, str]:
    """An address in R2P's ``AdresseReponse`` shape, every value a string, those that do not
    exist omitted: ``commune`` is the COG (when in France), ``commune_name`` its name when
    the commune is not one of ``COMMUNES_BY_COG``."""
    adresse = {"cdPays": pays}
    if pays == FRANCE:
        adresse["lbPays"] = "FRANCE"
    elif pays in COUNTRIES_BY_COG:
        adresse["lbPays"] = COUNTRIES_BY_COG[pays].name
    if commune is not None:
        department = department_of(commune)
        if department in TOMS:
            adresse |= {"cdTOM": department, "lbTOM": TOMS[department]}
        else:
            adresse["cdDepartement"] = department
            if department in DEPARTMENTS:
                adresse["lbDepartement"] = DEPARTMENTS[department]
        adresse["cdCommune"] = commune_code(commune)
        known = COMMUNES_BY_COG.get(commune)
        name = known.name if known is not None else commune_name
        if name:
            adresse["lbCommune"] = canonical_name(name)
    if voie and voie.strip():
        street = Street.parse(voie)
        if street.name:
            adresse["cdVoie"] = street_code(commune or pays, street.label)
            adresse["lbVoie"] = street.label
        if street.number is not None:
            adresse["numeroVoie"] = street.number
        if street.repetition is not None:
            adresse["indiceDeRepetition"] = street.repetition
    return adresse

"""Eligibility to the livret d'épargne populaire (LEP): the household's RFR against the
ceilings of CMF art. R221-33, the amounts of CGI art. 1417 I multiplied by 1.8 and rounded
up, which differ overseas.

R221-33 3°: to open a LEP in year B (the barème year), the RFR of year B-2 or B-1 must not
exceed the ceiling of year B for the household's parts (``annrev`` ∈ {B-2, B-1}).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from guichet.errors import ParameterInvalid

# Departments: 01–19, 2A, 2B, 21–95, and the overseas 971–974, 976.
_DEPARTEMENT: Final = re.compile(r"^(0[1-9]|1[0-9]|2[AB1-9]|[3-8][0-9]|9[0-5]|97[1-46])$")
_YEAR: Final = re.compile(r"^\d{4}$")


class Zone(StrEnum):
    METROPOLE = "metropole"
    ANTILLES_REUNION = "antilles_reunion"  # Guadeloupe, Martinique, La Réunion
    GUYANE = "guyane"
    MAYOTTE = "mayotte"


_OVERSEAS: Final = {
    "971": Zone.ANTILLES_REUNION,
    "972": Zone.ANTILLES_REUNION,
    "974": Zone.ANTILLES_REUNION,
    "973": Zone.GUYANE,
    "976": Zone.MAYOTTE,
}


@dataclass(frozen=True, slots=True)
class Ceiling:
    """RFR ceiling of one barème year and zone, in euros (already × 1.8, rounded up)."""

    first_part: int
    first_half_part: int  # the first extra half part
    next_half_part: int  # each further half part (a quarter part counts half)

    def for_parts(self, nb_part: float) -> int:
        extra = max(0.0, (nb_part - 1) * 2)  # extra half parts, 0.5 for a quarter part
        amount = (
            self.first_part
            + min(extra, 1.0) * self.first_half_part
            + max(extra - 1.0, 0.0) * self.next_half_part
        )
        return math.ceil(amount)


# The published ceilings by barème year (the year the LEP is opened or checked). Years or
# zones missing here take the nearest earlier figures (else the nearest later): see
# docs/catalogue.md before relying on them outside the sandbox.
CEILINGS: Final[dict[int, dict[Zone, Ceiling]]] = {
    2024: {Zone.METROPOLE: Ceiling(22_419, 5_987, 5_987)},
    2025: {
        Zone.METROPOLE: Ceiling(22_823, 6_095, 6_095),
        Zone.ANTILLES_REUNION: Ceiling(27_009, 6_450, 6_095),
        Zone.GUYANE: Ceiling(28_236, 7_771, 6_095),
        Zone.MAYOTTE: Ceiling(42_318, 11_644, 6_239),
    },
    2026: {Zone.METROPOLE: Ceiling(23_028, 6_149, 6_149)},
}


def zone_of(departement: str) -> Zone:
    return _OVERSEAS.get(departement, Zone.METROPOLE)


def ceiling(bareme: int, zone: Zone) -> Ceiling:
    """The figures of ``bareme`` for ``zone``, else the nearest earlier, else later, year's."""
    years = sorted(y for y, zones in CEILINGS.items() if zone in zones)
    earlier = [y for y in years if y <= bareme]
    year = earlier[-1] if earlier else years[0]
    return CEILINGS[year][zone]


def is_eligible(rfr: int, nb_part: float, bareme: int, departement: str) -> bool:
    return rfr <= ceiling(bareme, zone_of(departement)).for_parts(nb_part)


def parse_departement(value: object) -> str:
    text = str(value or "").upper()
    if not _DEPARTEMENT.match(text):
        raise ParameterInvalid(
            "Le département doit être un code INSEE (01 à 95, 2A, 2B, 971 à 976).",
            field="departement",
        )
    return text


def parse_bareme(value: object, annrev: int) -> int:
    """The barème year, 4 digits, one or two years after ``annrev`` (R221-33 3°)."""
    if value is None or not _YEAR.match(str(value)):
        raise ParameterInvalid("L'année du barème doit compter 4 chiffres.", field="bareme")
    bareme = int(str(value))
    if bareme - annrev not in (1, 2):
        raise ParameterInvalid(
            "L'année de revenus doit être l'une des deux années qui précèdent celle du barème.",
            field="annrev",
        )
    return bareme

"""Which revenue years a habilitation grants, relative to the current date [DESIGN,
``dgfip_annee_n_moins_*``; 004 art. 2 "année des revenus"]."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from guichet.catalog.products import YEAR_FALLBACK_SCOPE, YEAR_SCOPES

PARIS = ZoneInfo("Europe/Paris")


def current_year(now: dt.datetime) -> int:
    """Year N, as the provider counts it: in metropolitan France's time."""
    return now.astimezone(PARIS).year


@dataclass(frozen=True, slots=True)
class YearGrant:
    """Years granted outright, and the N-2 year granted only when N-1 has no situation."""

    years: frozenset[int]
    fallback_year: int | None
    n_minus_1: int

    def allows(self, annrev: int) -> bool:
        return annrev in self.years or annrev == self.fallback_year

    def is_conditional(self, annrev: int) -> bool:
        """True when only ``dgfip_annee_n_moins_2_si_indispo_n_moins_1`` allows ``annrev``."""
        return annrev not in self.years and annrev == self.fallback_year


def granted_years(year_scopes: Iterable[str], now: dt.datetime) -> YearGrant:
    scopes = frozenset(year_scopes)
    n = current_year(now)
    years = frozenset(n - offset for scope, offset in YEAR_SCOPES.items() if scope in scopes)
    fallback = n - 2 if YEAR_FALLBACK_SCOPE in scopes else None
    return YearGrant(years=years, fallback_year=fallback, n_minus_1=n - 1)

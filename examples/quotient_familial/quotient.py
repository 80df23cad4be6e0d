"""Démoville's rule: the quotient familial and its tariff bracket (a fictitious deliberation).

Délibération n° 2025-042 du conseil municipal de Démoville (fictive), « Tarification
des services scolaires et périscolaires » :

- article 1 : le quotient familial mensuel est égal au revenu fiscal de référence du foyer
  divisé par douze, puis par le nombre de parts fiscales ; il est arrondi au centime ;
- article 2 : le revenu retenu est celui du dernier avis d'imposition disponible
  (revenus N-1, à défaut revenus N-2) ;
- article 3 : le tarif de chaque prestation dépend de la tranche du quotient (A à F),
  selon le tableau ci-dessous ; sans quotient connu, la tranche F s'applique.

This module is pure (no I/O): the city's agents can check it against the deliberation,
and it is the only place that knows the tariffs.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

CENT: Final = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Tranche:
    """One bracket of the tariff table: QF up to ``qf_max`` (inclusive; None: no ceiling)."""

    lettre: str
    qf_max: Decimal | None
    repas: Decimal  # one school meal (restauration scolaire)
    accueil: Decimal  # one half-day at the leisure centre (accueil de loisirs)

    @property
    def intervalle(self) -> str:
        """The bracket in words, as the deliberation prints it."""
        index = TRANCHES.index(self)
        previous = TRANCHES[index - 1].qf_max if index else None
        if self.qf_max is None:
            return f"au-delà de {euros(previous or Decimal(0))}"
        if previous is None:
            return f"jusqu'à {euros(self.qf_max)}"
        return f"de {euros(previous + CENT)} à {euros(self.qf_max)}"


# Article 3's table, by increasing quotient.
TRANCHES: Final = (
    Tranche("A", Decimal("450"), Decimal("0.90"), Decimal("1.50")),
    Tranche("B", Decimal("700"), Decimal("1.70"), Decimal("2.60")),
    Tranche("C", Decimal("950"), Decimal("2.60"), Decimal("3.70")),
    Tranche("D", Decimal("1250"), Decimal("3.40"), Decimal("4.90")),
    Tranche("E", Decimal("1600"), Decimal("4.10"), Decimal("6.10")),
    Tranche("F", None, Decimal("4.80"), Decimal("7.20")),
)


def quotient_familial(rfr: int, parts: Decimal) -> Decimal:
    """Article 1: RFR / 12 / number of parts, rounded to the cent (half up)."""
    if rfr < 0:
        raise ValueError("a revenu fiscal de référence is never negative")
    if parts <= 0:
        raise ValueError("a household has at least one part")
    return (Decimal(rfr) / 12 / parts).quantize(CENT, rounding=ROUND_HALF_UP)


def tranche_of(qf: Decimal | None) -> Tranche:
    """Article 3: the first bracket whose ceiling the quotient does not exceed; F without
    a quotient."""
    if qf is None:
        return TRANCHES[-1]
    for tranche in TRANCHES:
        if tranche.qf_max is None or qf <= tranche.qf_max:
            return tranche
    return TRANCHES[-1]


def euros(amount: Decimal | int, *, cents: bool = True) -> str:
    """French money format: 1 250,00 € (narrow no-break space for thousands); without cents
    for whole amounts such as a revenu fiscal de référence (31 250 €)."""
    text = f"{Decimal(amount).quantize(CENT):,.2f}" if cents else f"{int(amount):,d}"
    whole, _, decimals = text.partition(".")
    whole = whole.replace(",", "\u202f")
    return (f"{whole},{decimals}" if decimals else whole) + "\u00a0€"

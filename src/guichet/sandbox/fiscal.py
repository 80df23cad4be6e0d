"""Simplified French income-tax rules that keep the fictive records coherent (parts, tax)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

COUPLE: Final = frozenset({"M", "O"})
FAMILY_SITUATIONS: Final = ("M", "C", "D", "V", "O")

# Barème of the income tax per part (revenus 2024), thresholds in euros and marginal rates.
_BRACKETS: Final = ((11_294, 0.0), (28_797, 0.11), (82_341, 0.30), (177_106, 0.41))
_TOP_RATE: Final = 0.45
RECOVERY_THRESHOLD: Final = 61  # below this amount the tax is not collected


@dataclass(frozen=True, slots=True)
class Pac:
    """Dependants as the declaration counts them (letters of the form's boxes).

    F exclusive minor children (G of them with an invalidity card), H minor children in
    alternating residence (I of them with an invalidity card), R invalid dependants,
    J single adult children, N married adult children, P grandchildren in alternating
    residence.
    """

    F: int = 0
    G: int = 0
    H: int = 0
    I: int = 0  # noqa: E741 — the form's own letter
    R: int = 0
    J: int = 0
    N: int = 0
    P: int = 0

    @property
    def total(self) -> int:
        """``nbPac``: G and I are subsets of F and H, not extra persons."""
        return self.F + self.H + self.R + self.J + self.N + self.P

    def as_record(self) -> dict[str, int]:
        return {
            "nbPac": self.total,
            "nbPacF": self.F,
            "nbPacG": self.G,
            "nbPacH": self.H,
            "nbPacI": self.I,
            "nbPacR": self.R,
            "nbPacJ": self.J,
            "nbPacN": self.N,
            "nbPacP": self.P,
        }


def parts(sit_fam: str, pac: Pac, *, parent_isole: bool, survivant: bool = False) -> float:
    """Number of parts (quotient familial), simplified from CGI art. 194–195.

    Two parts for a couple (or a widow(er) with dependants, or the survivor's declaration
    after the death of their spouse during the year, ``survivant``), one otherwise; exclusive
    children (F, J) count ½ each for the first two and 1 from the third; shared children
    (H, P) count half of that; R and invalidity cards add to it; a single parent (case T)
    with exclusive children gets ½ more (¼ with shared children only).
    """
    widowed = sit_fam == "V" and (pac.total > 0 or survivant)
    base = 2.0 if sit_fam in COUPLE or widowed else 1.0
    total = base
    rank = 0
    for _ in range(pac.F + pac.J):
        rank += 1
        total += 0.5 if rank <= 2 else 1.0
    for _ in range(pac.H + pac.P):
        rank += 1
        total += 0.25 if rank <= 2 else 0.5
    total += pac.R * 1.0 + pac.G * 0.5 + pac.I * 0.25
    if parent_isole and sit_fam not in COUPLE:
        if pac.F + pac.J > 0:
            total += 0.5
        elif pac.H + pac.P > 0:
            total += 0.25
    return total


def tax_before_credits(taxable_income: int, nb_parts: float) -> int:
    """Progressive barème applied to one part, times the parts (no ceiling, no décote)."""
    if taxable_income <= 0:
        return 0
    per_part = taxable_income / nb_parts
    tax = 0.0
    lower = 0
    for upper, rate in _BRACKETS:
        if per_part > lower:
            tax += (min(per_part, upper) - lower) * rate
        lower = upper
    if per_part > lower:
        tax += (per_part - lower) * _TOP_RATE
    return round(tax * nb_parts)


# --- the IR notice's lines (the ``factures`` resource) ----------------------------------

# The sandbox's line codes (docs/catalogue.md): colonne1 an amount in euros, colonne2 the
# date of mise en recouvrement, colonne3 the payment deadline.
FACTURE_LINES: Final = {
    "IMPNET": "Impôt sur le revenu net",
    "PAS": "Prélèvement à la source et acomptes déjà versés",
    "SOLDE": "Solde à payer",
    "RESTIT": "Somme à restituer",
    "PAYE": "Montant payé",
    "RESTE": "Reste à payer",
}


def facture_lines(
    record: dict[str, Any], annrev: int, *, withheld: int, paid: bool
) -> list[dict[str, Any]]:
    """The notice of a situation: its net tax (``montTotIr``), what withholding already
    took, and the balance, paid by the deadline (``paid``) or still due. A column a line
    does not use is omitted."""
    tax = int(record.get("montTotIr") or 0)
    balance = tax - withheld
    recovery = str(record.get("datRec") or f"{annrev + 1}-07-31")
    # Due 46 days after the recovery date: 15 September for a notice recovered 31 July.
    deadline = (dt.date.fromisoformat(recovery) + dt.timedelta(days=46)).isoformat()

    def line(n: int, code: str, amount: int, *dates: str) -> dict[str, Any]:
        columns = {f"colonne{i}": v for i, v in enumerate((str(amount), *dates), start=1)}
        return {"numLigne": n, "codeLigne": code, "libelleLigne": FACTURE_LINES[code]} | columns

    lines = [line(1, "IMPNET", tax), line(2, "PAS", withheld)]
    if balance < 0:
        lines.append(line(3, "RESTIT", -balance, recovery))
        return lines
    settled = balance if paid else 0
    lines += [
        line(3, "SOLDE", balance, recovery, deadline),
        line(4, "PAYE", settled),
        line(5, "RESTE", balance - settled),
    ]
    return lines


# --- the wealth tax on real estate (IFI) -------------------------------------------------

IFI_THRESHOLD: Final = 1_300_000
# CGI art. 977: brackets of the net taxable value and marginal rates.
_IFI_BRACKETS: Final = (
    (800_000, 0.0),
    (1_300_000, 0.005),
    (2_570_000, 0.007),
    (5_000_000, 0.01),
    (10_000_000, 0.0125),
)
_IFI_TOP_RATE: Final = 0.015


def ifi_amount(net_taxable: int) -> int:
    """IFI due on ``net_taxable`` euros: nothing up to the threshold, the barème above it,
    less the décote between 1.3 and 1.4 M€ (17 500 € − 1.25 % of the value)."""
    if net_taxable < IFI_THRESHOLD:
        return 0
    tax, lower = 0.0, 0
    for upper, rate in _IFI_BRACKETS:
        if net_taxable > lower:
            tax += (min(net_taxable, upper) - lower) * rate
        lower = upper
    if net_taxable > lower:
        tax += (net_taxable - lower) * _IFI_TOP_RATE
    if net_taxable < 1_400_000:
        tax -= 17_500 - 0.0125 * net_taxable
    return max(0, round(tax))


def ifi_record(net_taxable: int) -> dict[str, Any]:
    """The IFI record of a household declaring ``net_taxable`` euros of real estate: the
    provider's ``SituationIfiIsfJAXBbean`` (``"O"`` when some IFI is due), nothing more."""
    return {"indicateurIfiIsf": "O" if ifi_amount(net_taxable) > 0 else "N"}

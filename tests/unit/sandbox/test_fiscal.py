"""The simplified tax rules behind the fictive records."""

from __future__ import annotations

import pytest

from guichet.sandbox.fiscal import Pac, parts, tax_before_credits


@pytest.mark.parametrize(
    ("sit_fam", "pac", "isole", "expected"),
    [
        ("C", Pac(), False, 1.0),
        ("M", Pac(), False, 2.0),
        ("O", Pac(F=2), False, 3.0),
        ("M", Pac(F=3), False, 4.0),
        ("D", Pac(F=1), True, 2.0),
        ("D", Pac(H=2), False, 1.5),
        ("D", Pac(F=1, H=2), True, 2.75),
        ("V", Pac(F=1), False, 2.5),
        ("V", Pac(), False, 1.0),
        ("M", Pac(F=1, G=1), False, 3.0),
        ("C", Pac(R=1), False, 2.0),
    ],
)
def test_parts(sit_fam: str, pac: Pac, isole: bool, expected: float) -> None:
    assert parts(sit_fam, pac, parent_isole=isole) == expected


def test_nb_pac_counts_persons_not_invalidity_cards() -> None:
    assert Pac(F=2, G=1, H=1, I=1, J=1).total == 4


def test_tax_is_zero_under_the_first_bracket_and_grows() -> None:
    assert tax_before_credits(0, 1) == 0
    assert tax_before_credits(11_000, 1) == 0
    assert 0 < tax_before_credits(30_000, 1) < tax_before_credits(60_000, 1)
    # The quotient familial: same income, more parts, less tax.
    assert tax_before_credits(60_000, 3) < tax_before_credits(60_000, 2)

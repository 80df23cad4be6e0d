"""Confirming an irreversible action by typing the organisation's name (terminations)."""

from __future__ import annotations

import unicodedata

from guichet.errors import GuichetError


class NameNotConfirmed(GuichetError):
    """The name typed to confirm a termination is not the organisation's."""

    status = 400
    code = "confirmation_name_mismatch"
    title = "Confirmation incorrecte"


def _folded(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def check_typed_name(typed: str, name: str) -> None:
    """Case, accents' composition and spaces aside, ``typed`` must be ``name``."""
    if not typed.strip() or _folded(typed) != _folded(name):
        raise NameNotConfirmed(
            f"Saisissez exactement le nom de l'organisation, « {name} », pour confirmer."
        )

"""The canonical form of a name, as the provider's état civil holds it and R2P compares it."""

from __future__ import annotations

import re
import unicodedata

_SEPARATORS = re.compile(r"[\s\-'’‘`]+")
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'"})


def canonical_name(value: str) -> str:
    """Upper case, no accents, spaces collapsed: ``" Lefèvre-d’Ornano"`` → ``"LEFEVRE-D'ORNANO"``.

    This is how the provider writes birth names; stored names are already in this form.
    """
    decomposed = unicodedata.normalize("NFKD", value.translate(_APOSTROPHES))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.upper().replace("Œ", "OE").replace("Æ", "AE").split())


def name_key(value: str) -> str:
    """A comparison key that also ignores separators: ``"Jean-Pierre"`` ≡ ``"JEAN PIERRE"``."""
    return " ".join(_SEPARATORS.split(canonical_name(value))).strip()

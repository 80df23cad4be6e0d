"""Names in the provider's canonical form."""

from __future__ import annotations

from guichet.records.names import canonical_name, name_key


def test_canonical_name_drops_case_accents_and_extra_spaces() -> None:
    assert canonical_name("  Lefèvre-d’Ornano ") == "LEFEVRE-D'ORNANO"
    assert canonical_name("Œillet  Çà") == "OEILLET CA"


def test_name_key_ignores_separators() -> None:
    assert name_key("Jean-Pierre") == name_key("jean  pierre") == "JEAN PIERRE"

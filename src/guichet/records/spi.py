"""The SPI (numéro fiscal, 13 digits) check shared by the importer and the APIs."""

from __future__ import annotations

from stdnum.fr import nif

from guichet.errors import SpiInvalid


def is_spi(value: str | None) -> bool:
    """Exactly 13 digits with a valid check (``stdnum.fr.nif``); no separators accepted."""
    return value is not None and len(value) == 13 and value.isdigit() and bool(nif.is_valid(value))


def parse_spi(value: object, field: str = "spi") -> str:
    """A path or query value as an SPI, or a 400 ``spi_invalid`` naming ``field``."""
    text = None if value is None else str(value)
    if text is None or not is_spi(text):
        raise SpiInvalid("Le numéro SPI doit compter 13 chiffres et une clé valide.", field=field)
    return text

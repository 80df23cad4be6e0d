"""FranceConnect v2's identity pivot, and the persons of a store it designates: how the data
provider finds the citizen of a federation token (the gateway's FranceConnect mode) or of a
sign-in (the portal's citizen page)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, select

from guichet.records.models import Person
from guichet.records.names import canonical_name, name_key

FRANCE: Final = "99100"
_SEXE: Final = {"female": "F", "male": "M"}


@dataclass(frozen=True, slots=True)
class IdentityPivot:
    """FranceConnect v2's identity pivot: what the provider matches its records on."""

    given_name: str  # space-separated first names
    family_name: str  # birth name
    birthdate: dt.date
    gender: str  # "male" or "female"
    birthplace: str  # COG commune code when born in France, else ""
    birthcountry: str  # COG country code, 99100 = France


def persons_of_pivot(conn: Connection, store: str, pivot: IdentityPivot) -> list[str]:
    """SPIs of the store's persons the pivot designates, by SPI: same birth name (canonical
    form), first first-name, birth date, sex, birth country and, born in France, COG commune."""
    sexe = _SEXE.get(pivot.gender)
    if sexe is None:
        return []
    query = select(Person.spi, Person.prenoms).where(
        Person.store == store,
        Person.nom_naissance == canonical_name(pivot.family_name),
        Person.date_naissance == pivot.birthdate,
        Person.sexe == sexe,
        Person.code_pays_naissance == pivot.birthcountry,
    )
    if pivot.birthcountry == FRANCE:
        query = query.where(Person.code_commune_naissance == pivot.birthplace)
    wanted = _first_first_name(pivot.given_name)
    rows = conn.execute(query.order_by(Person.spi)).all()
    return [r.spi for r in rows if wanted and _first_first_name(r.prenoms) == wanted]


def _first_first_name(names: str) -> str:
    first = canonical_name(names).split(" ")[0] if names.strip() else ""
    return name_key(first)

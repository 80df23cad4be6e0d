"""Store lookups the API operations use; each takes a ``Session`` and reads one store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol, cast

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from guichet.records.models import IrSituation, Person, ThLocal
from guichet.records.names import canonical_name, name_key


class Situation(Protocol):
    """What the API reads of an IR situation (a plain row: no ORM object on the hot path)."""

    @property
    def annrev(self) -> int: ...
    @property
    def rang(self) -> int: ...
    @property
    def record(self) -> dict[str, Any]: ...


_SITUATION_COLUMNS = (IrSituation.annrev, IrSituation.rang, IrSituation.record)


def situations_of_year(
    session: Session | Connection, store: str, spi: str, annrev: int
) -> Sequence[Situation]:
    """The person's situations for one revenue year, by ``rang`` (date order)."""
    rows = session.execute(
        select(*_SITUATION_COLUMNS)
        .where(IrSituation.store == store, IrSituation.spi == spi, IrSituation.annrev == annrev)
        .order_by(IrSituation.rang)
    ).all()
    return cast(Sequence[Situation], rows)


def situations_of(session: Session | Connection, store: str, spi: str) -> Sequence[Situation]:
    """Every situation held for the person, most recent year first, then by ``rang``."""
    rows = session.execute(
        select(*_SITUATION_COLUMNS)
        .where(IrSituation.store == store, IrSituation.spi == spi)
        .order_by(IrSituation.annrev.desc(), IrSituation.rang)
    ).all()
    return cast(Sequence[Situation], rows)


def years_with_situation(session: Session, store: str, spi: str) -> set[int]:
    return set(
        session.scalars(
            select(IrSituation.annrev)
            .where(IrSituation.store == store, IrSituation.spi == spi)
            .distinct()
        ).all()
    )


def person_by_spi(session: Session, store: str, spi: str) -> Person | None:
    return session.get(Person, (store, spi))


def persons_by_etat_civil(
    session: Session,
    store: str,
    *,
    nom: str,
    date_naissance: dt.date,
    prenom: str | None = None,
    sexe: str | None = None,
    code_pays: str | None = None,
    code_dept: str | None = None,
    code_commune: str | None = None,
) -> list[Person]:
    """Persons matching the criteria given, ordered by SPI.

    Names are compared as the provider writes them (upper case, no accents); the birth
    name must match, the first name given must match the first first-name or all of them
    (``"Jean"`` and ``"Jean Pierre"`` both find ``Jean Pierre``; hyphens equal spaces).
    """
    query = select(Person).where(
        Person.store == store,
        Person.nom_naissance == canonical_name(nom),
        Person.date_naissance == date_naissance,
    )
    if sexe is not None:
        query = query.where(Person.sexe == sexe)
    if code_pays is not None:
        query = query.where(Person.code_pays_naissance == code_pays)
    if code_dept is not None:
        query = query.where(Person.code_dept_naissance == code_dept)
    if code_commune is not None:
        query = query.where(Person.code_commune_naissance == code_commune)
    found = session.scalars(query.order_by(Person.spi)).all()
    if prenom is None:
        return list(found)
    wanted = name_key(prenom)
    return [p for p in found if _first_names_match(wanted, name_key(p.prenoms))]


def _first_names_match(wanted: str, held: str) -> bool:
    return held == wanted or held.split(" ")[0] == wanted or held.startswith(wanted + " ")


def th_assessments(
    session: Session | Connection, store: str, spi: str, annee: int
) -> list[dict[str, Any]]:
    """The person's housing-tax assessments of ``annee``, in OS7's vocabulary: one
    ``{"regimeTax": "P" or "S", "locaux": [{"natureLocal", "affectation", "invariant"}]}``
    per ``avis``, in ``avis`` then ``invariant`` order."""
    rows = session.execute(
        select(
            ThLocal.avis,
            ThLocal.principal,
            ThLocal.nature_local,
            ThLocal.affectation,
            ThLocal.invariant,
        )
        .where(ThLocal.store == store, ThLocal.spi == spi, ThLocal.annee == annee)
        .order_by(ThLocal.avis, ThLocal.invariant)
    ).all()
    assessments: dict[str, dict[str, Any]] = {}
    for avis, principal, nature, affectation, invariant in rows:
        assessment = assessments.setdefault(
            avis, {"regimeTax": "P" if principal else "S", "locaux": []}
        )
        assessment["locaux"].append(
            {"natureLocal": nature, "affectation": affectation, "invariant": invariant}
        )
    return list(assessments.values())

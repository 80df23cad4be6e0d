"""Store lookups the API operations use; each takes a ``Session`` and reads one store."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import Connection, Engine, Select, bindparam, or_, select
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


@cache
def _of_year_query() -> Select[tuple[int, int, dict[str, Any]]]:
    # Built once with bound parameters: building a select per call cost more than the read.
    return (
        select(*_SITUATION_COLUMNS)
        .where(
            IrSituation.store == bindparam("store"),
            IrSituation.spi == bindparam("spi"),
            IrSituation.annrev == bindparam("annrev"),
        )
        .order_by(IrSituation.rang)
    )


@cache
def _of_person_query() -> Select[tuple[int, int, dict[str, Any]]]:
    return (
        select(*_SITUATION_COLUMNS)
        .where(IrSituation.store == bindparam("store"), IrSituation.spi == bindparam("spi"))
        .order_by(IrSituation.annrev.desc(), IrSituation.rang)
    )


def situations_of_year(
    session: Session | Connection, store: str, spi: str, annrev: int
) -> Sequence[Situation]:
    """The person's situations for one revenue year, by ``rang`` (date order)."""
    rows = session.execute(_of_year_query(), {"store": store, "spi": spi, "annrev": annrev}).all()
    return cast(Sequence[Situation], rows)


def situations_of(session: Session | Connection, store: str, spi: str) -> Sequence[Situation]:
    """Every situation held for the person, most recent year first, then by ``rang``."""
    rows = session.execute(_of_person_query(), {"store": store, "spi": spi}).all()
    return cast(Sequence[Situation], rows)


class SituationRow(NamedTuple):
    annrev: int
    rang: int
    record: dict[str, Any]


class SituationSource(Protocol):
    """Where an operation reads IR situations from: a pooled connection in a worker thread
    (``CoreSituations``), or SQLite straight from the calling thread (``SqliteSituations``)."""

    def of_year(self, store: str, spi: str, annrev: int) -> Sequence[Situation]: ...
    def of_person(self, store: str, spi: str) -> Sequence[Situation]: ...


class CoreSituations:
    """``situations_of_year`` / ``situations_of`` on a session or Core connection."""

    def __init__(self, session: Session | Connection) -> None:
        self._session = session

    def of_year(self, store: str, spi: str, annrev: int) -> Sequence[Situation]:
        return situations_of_year(self._session, store, spi, annrev)

    def of_person(self, store: str, spi: str) -> Sequence[Situation]:
        return situations_of(self._session, store, spi)


# A read on the loop may wait this long for a lock (ms). In WAL mode readers wait on
# writers only in rare cases (WAL recovery); the pool's 30 s would freeze the gateway.
INLINE_BUSY_TIMEOUT_MS = 1000


class SqliteSituations:
    """The same two reads on SQLite, run by the calling thread itself (the event loop).

    A point read on the primary key costs a few microseconds in SQLite: far less than
    handing it to a worker thread and back, which the gateway used to pay on every call.
    Each thread gets its own connection, in autocommit, so every read is its own read
    transaction and sees every import committed before it (no cache, nothing stale). The
    statements are SQLAlchemy's own compilation of ``situations_of_year`` / ``situations_of``.
    """

    def __init__(self, engine: Engine) -> None:
        # Weakly: the registry below is keyed by the engine, and must not keep it alive.
        self._engine = weakref.ref(engine)
        self._local = threading.local()
        of_year = _of_year_query().compile(dialect=engine.dialect)
        of_person = _of_person_query().compile(dialect=engine.dialect)
        # Positional ("?") parameters, in the order the methods below pass them.
        assert of_year.positiontup == ["store", "spi", "annrev"], of_year.positiontup
        assert of_person.positiontup == ["store", "spi"], of_person.positiontup
        self._of_year = str(of_year)
        self._of_person = str(of_person)

    def _connection(self) -> sqlite3.Connection:
        raw: sqlite3.Connection | None = getattr(self._local, "raw", None)
        if raw is None:
            # Made by the engine (so with its pragmas), then detached from its pool: the pool
            # keeps its size, and the connection closes with its thread's storage. One per
            # thread that reads: in practice the event loop's.
            engine = self._engine()
            if engine is None:  # pragma: no cover - the caller holds the engine
                raise RuntimeError("engine disposed of")
            proxy = engine.raw_connection()
            raw = cast(sqlite3.Connection, proxy.driver_connection)
            proxy.detach()
            raw.isolation_level = None
            raw.execute(f"PRAGMA busy_timeout={INLINE_BUSY_TIMEOUT_MS}")
            self._local.proxy = proxy
            self._local.raw = raw
        return raw

    def of_year(self, store: str, spi: str, annrev: int) -> Sequence[Situation]:
        rows = self._connection().execute(self._of_year, (store, spi, annrev)).fetchall()
        return [SituationRow(a, r, json.loads(rec)) for a, r, rec in rows]

    def of_person(self, store: str, spi: str) -> Sequence[Situation]:
        rows = self._connection().execute(self._of_person, (store, spi)).fetchall()
        return [SituationRow(a, r, json.loads(rec)) for a, r, rec in rows]


_inline: weakref.WeakKeyDictionary[Engine, SqliteSituations] = weakref.WeakKeyDictionary()
_inline_lock = threading.Lock()


def inline_situations(engine: Engine) -> SqliteSituations | None:
    """The engine's ``SqliteSituations`` on SQLite; None elsewhere (PostgreSQL is read from
    a worker thread: a network round trip must not hold the event loop)."""
    if engine.dialect.name != "sqlite":
        return None
    reader = _inline.get(engine)
    if reader is None:
        with _inline_lock:
            reader = _inline.get(engine)
            if reader is None:
                reader = _inline[engine] = SqliteSituations(engine)
    return reader


def person_by_spi(session: Session, store: str, spi: str) -> Person | None:
    return session.get(Person, (store, spi))


@dataclass(frozen=True, slots=True)
class AddressCriteria:
    """What an R2P search asks of the address (``AdresseReponse``, as stored): ``codes``
    are exact values of its properties (``cdPays``, ``cdDepartement``, ``cdTOM``,
    ``cdCommune``, ``numeroVoie``, ``indiceDeRepetition``); ``department`` matches
    ``cdDepartement`` or ``cdTOM``; ``street_type`` and ``street_name`` compare with
    ``lbVoie`` (type abbreviation, then name), ignoring case, accents and separators."""

    codes: Mapping[str, str] = field(default_factory=dict)
    department: str | None = None
    street_type: str | None = None
    street_name: str | None = None


def persons_by_etat_civil(
    session: Session,
    store: str,
    *,
    nom: str,
    prenom: str | None = None,
    sexe: str | None = None,
    born: tuple[dt.date, dt.date] | None = None,
    code_pays: str | None = None,
    code_dept: str | None = None,
    born_abroad: bool = False,
    code_commune: str | None = None,
    commune_suffix: str | None = None,
    adresse: AddressCriteria | None = None,
) -> list[Person]:
    """Persons matching every criterion given, ordered by SPI.

    The birth name must match as the provider writes it (upper case, no accents); ``born``
    is an inclusive range of birth dates; ``code_dept`` the birth department (or overseas
    collectivity); ``born_abroad`` keeps those without one; ``code_commune`` is the birth
    commune's COG, ``commune_suffix`` its last three characters. The database narrows by
    store, birth name (indexed with the birth date), birth date and codes, and the
    address's codes; first names and street labels are compared on those rows only: the
    first name given must match the first first-name or a leading run of them (``"Jean"``
    and ``"Jean Pierre"`` both find ``Jean Pierre Marc``; hyphens equal spaces).
    """
    query = select(Person).where(Person.store == store, Person.nom_naissance == canonical_name(nom))
    if born is not None:
        query = query.where(Person.date_naissance.between(*born))
    if sexe is not None:
        query = query.where(Person.sexe == sexe)
    if code_pays is not None:
        query = query.where(Person.code_pays_naissance == code_pays)
    if code_dept is not None:
        query = query.where(Person.code_dept_naissance == code_dept)
    if born_abroad:
        query = query.where(Person.code_dept_naissance.is_(None))
    if code_commune is not None:
        query = query.where(Person.code_commune_naissance == code_commune)
    if commune_suffix is not None:
        query = query.where(Person.code_commune_naissance.endswith(commune_suffix, autoescape=True))
    if adresse is not None:
        for key, value in adresse.codes.items():
            query = query.where(Person.adresse[key].as_string() == value)
        if adresse.department is not None:
            query = query.where(
                or_(
                    Person.adresse["cdDepartement"].as_string() == adresse.department,
                    Person.adresse["cdTOM"].as_string() == adresse.department,
                )
            )
    found = session.scalars(query.order_by(Person.spi)).all()
    wanted = name_key(prenom) if prenom is not None else None
    return [
        p
        for p in found
        if (wanted is None or _first_names_match(wanted, name_key(p.prenoms)))
        and (adresse is None or _street_matches(adresse, p.adresse.get("lbVoie")))
    ]


def _first_names_match(wanted: str, held: str) -> bool:
    return held == wanted or held.startswith(wanted + " ")


def _street_matches(criteria: AddressCriteria, label: str | None) -> bool:
    """``lbVoie`` is the type's abbreviation, then the name (``RTE DU GAL DE GAULLE``)."""
    if criteria.street_type is None and criteria.street_name is None:
        return True
    if label is None:
        return False
    held = name_key(label)
    first, _, rest = held.partition(" ")
    if criteria.street_type is not None and first != name_key(criteria.street_type):
        return False
    if criteria.street_name is not None:
        name = name_key(criteria.street_name)
        return name in (rest, held)
    return True


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

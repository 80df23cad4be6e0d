"""The records' tables as a whole, per store (issue 12): the production store lives in a
database of its own, so a data directory made before that split holds production records in
the main database — found by ``count_rows``, moved by ``move_store`` (``guichet data
move-production``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table, delete, func, insert, inspect, select
from sqlalchemy.orm import Session, sessionmaker

import guichet.records.ficoba as _ficoba  # noqa: F401 - its tables are records too
from guichet.db.base import Base
from guichet.records import models as _models  # noqa: F401 - the records' tables

_BATCH = 2000


def store_tables() -> list[Table]:
    """Every table holding records per store, parents before children."""
    return [t for t in Base.metadata.sorted_tables if "store" in t.c]


def count_rows(session_factory: sessionmaker[Session], store: str) -> dict[str, int]:
    """The rows ``store`` holds in this database, by table (tables with none left out; a
    table the database lacks counts none)."""
    engine = session_factory.kw["bind"]
    present = set(inspect(engine).get_table_names())
    counts: dict[str, int] = {}
    with session_factory() as session:
        for table in store_tables():
            if table.name not in present:
                continue
            n = session.scalar(
                select(func.count()).select_from(table).where(table.c.store == store)
            )
            if n:
                counts[table.name] = int(n)
    return counts


def move_store(
    source: sessionmaker[Session], target: sessionmaker[Session], store: str
) -> dict[str, int]:
    """Copy ``store``'s rows from ``source`` to ``target`` (replacing what ``target`` held of
    that store), then delete them from ``source``: the target's transaction commits first,
    so an interruption leaves the rows in both, never in neither; a second run finishes."""
    tables = store_tables()
    moved: dict[str, int] = {}
    with target() as out, out.begin():
        for table in reversed(tables):
            out.execute(delete(table).where(table.c.store == store))
        with source() as src:
            for table in tables:
                moved[table.name] = _copy(src, out, table, store)
    with source() as src, src.begin():
        for table in reversed(tables):
            src.execute(delete(table).where(table.c.store == store))
    return {name: n for name, n in moved.items() if n}


def _copy(src: Session, out: Session, table: Table, store: str) -> int:
    columns: Sequence[str] = [c.name for c in table.c]
    result = src.execute(
        select(table).where(table.c.store == store).execution_options(yield_per=_BATCH)
    )
    total = 0
    for partition in result.partitions(_BATCH):
        rows = [dict(zip(columns, row, strict=True)) for row in partition]
        out.execute(insert(table), rows)
        total += len(rows)
    return total

"""Situations read from the calling thread on SQLite: same answers as the pooled reads, and
every committed change seen by the next read (nothing cached)."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, delete, update
from sqlalchemy.orm import Session, sessionmaker

from guichet.db import transaction
from guichet.records import service
from guichet.records.models import IrSituation
from guichet.sandbox import personas
from guichet.sandbox.population import seed

YEAR = 2026


def _rows(found: object) -> list[tuple[int, int, object]]:
    return [(s.annrev, s.rang, s.record) for s in found]  # type: ignore[attr-defined]


def test_only_sqlite_reads_inline(engine: Engine) -> None:
    reader = service.inline_situations(engine)
    if engine.dialect.name == "sqlite":
        assert isinstance(reader, service.SqliteSituations)
        assert service.inline_situations(engine) is reader  # one per engine
    else:
        # A network round trip must not hold the event loop: PostgreSQL stays pooled.
        assert reader is None


def test_inline_reads_answer_like_the_pooled_ones(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    seed(session_factory, households=5, reference_year=YEAR)
    reader = service.inline_situations(engine)
    if reader is None:
        return  # PostgreSQL: covered by test_only_sqlite_reads_inline
    with engine.connect() as conn:
        pooled = service.CoreSituations(conn)
        for persona in (personas.BRIDE, personas.DUBOIS, personas.NO_N1):
            for store in ("sandbox", "production"):
                for year in (YEAR - 1, YEAR - 2, YEAR - 3):
                    assert _rows(reader.of_year(store, persona.spi, year)) == _rows(
                        pooled.of_year(store, persona.spi, year)
                    )
                assert _rows(reader.of_person(store, persona.spi)) == _rows(
                    pooled.of_person(store, persona.spi)
                )
    bride = reader.of_year("sandbox", personas.BRIDE.spi, YEAR - 1)
    assert [s.rang for s in bride] == [1, 2]
    assert reader.of_year("production", personas.BRIDE.spi, YEAR - 1) == []
    assert [(s.annrev, s.rang) for s in reader.of_person("sandbox", personas.BRIDE.spi)] == [
        (YEAR - 1, 1),
        (YEAR - 1, 2),
        (YEAR - 2, 1),
        (YEAR - 3, 1),
    ]


def test_a_reimport_is_seen_by_the_next_read(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    seed(session_factory, households=5, reference_year=YEAR)
    reader = service.inline_situations(engine)
    if reader is None:
        return
    spi = personas.DUBOIS.spi
    before = reader.of_year("sandbox", spi, YEAR - 1)
    assert before
    # Another connection changes the store (what an import does), then removes it.
    changed = {**before[0].record, "rfr": 1}
    with transaction(session_factory) as s:
        s.execute(
            update(IrSituation)
            .where(IrSituation.store == "sandbox", IrSituation.spi == spi)
            .where(IrSituation.annrev == YEAR - 1, IrSituation.rang == before[0].rang)
            .values(record=changed)
        )
    assert reader.of_year("sandbox", spi, YEAR - 1)[0].record["rfr"] == 1
    with transaction(session_factory) as s:
        s.execute(delete(IrSituation).where(IrSituation.spi == spi))
    assert reader.of_year("sandbox", spi, YEAR - 1) == []
    assert reader.of_person("sandbox", spi) == []


def test_each_thread_reads_on_its_own_connection(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    seed(session_factory, households=5, reference_year=YEAR)
    reader = service.inline_situations(engine)
    if reader is None:
        return
    expected = _rows(reader.of_year("sandbox", personas.BRIDE.spi, YEAR - 1))
    results: list[list[tuple[int, int, object]]] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(20):
                results.append(_rows(reader.of_year("sandbox", personas.BRIDE.spi, YEAR - 1)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [expected] * 80

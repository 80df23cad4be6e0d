"""50 concurrent appenders: group commit batches them (appends/s printed with ``-s``).

The figure is information, not a pass mark: speed is measured by benchmarks, not asserted.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy.orm import Session, sessionmaker

from guichet.clock import FrozenClock
from guichet.journal.verify import verify
from guichet.journal.writer import JournalWriter
from tests.unit.journal.conftest import make_entry

APPENDERS = 50
PER_APPENDER = 40


def test_fifty_concurrent_appenders(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    writer = JournalWriter(session_factory)
    writer.start()

    async def appender() -> None:
        for _ in range(PER_APPENDER):
            await writer.append(make_entry(clock.now()))

    async def run() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(appender() for _ in range(APPENDERS)))
        elapsed = time.perf_counter() - started
        await writer.close()
        return elapsed

    elapsed = asyncio.run(run())
    total = APPENDERS * PER_APPENDER
    rate = total / elapsed
    dialect = session_factory.kw["bind"].dialect.name
    print(
        f"\njournal {dialect}: {total} appends by {APPENDERS} concurrent appenders in "
        f"{elapsed:.2f}s = {rate:.0f}/s, {writer.transactions} transactions "
        f"({total / writer.transactions:.1f} records each)"
    )
    assert verify(session_factory).checked == total
    # Group commit at work: far fewer transactions than records.
    assert writer.transactions < total / 2

"""Run as a separate OS process: appends entries to a journal shared with other processes.

Usage: python _appender.py DB_URL TAG COUNT READY_DIR PEERS
Waits until PEERS processes have written their ready file in READY_DIR, then appends
COUNT entries (tagged TAG in ``client_id``) through its own JournalWriter, 25 at a time,
in lockstep with its peers: batch k starts once every peer has written batch k - 1, so the
records interleave even when a loaded machine schedules one process long before the other.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
import uuid
from pathlib import Path

from guichet.db import make_engine, make_sessionmaker
from guichet.journal.entry import JournalEntry
from guichet.journal.writer import JournalWriter


def entry(tag: str, i: int) -> JournalEntry:
    return JournalEntry(
        id=uuid.uuid4(),
        at=dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC) + dt.timedelta(milliseconds=i),
        environment="sandbox",
        correlation_id=str(uuid.uuid4()),
        partner_id=None,
        habilitation_id=None,
        client_id=tag,
        api="impot_particulier",
        operation="GET situations_ir",
        source_ip="127.0.0.1",
        cert_thumbprint=None,
        subject=None,
        data_scopes=[],
        outcome="ok",
        http_status=200,
        latency_ms=1.0,
    )


def barrier(ready_dir: Path, name: str, tag: str, peers: int) -> None:
    """Wait until every peer has written ``name``: the test checks that records interleave."""
    (ready_dir / f"{name}-{tag}").touch()
    deadline = time.monotonic() + 60
    while len(list(ready_dir.glob(f"{name}-*"))) < peers and time.monotonic() < deadline:
        time.sleep(0.005)


async def main(url: str, tag: str, count: int, ready_dir: Path, peers: int) -> None:
    engine = make_engine(url)
    writer = JournalWriter(make_sessionmaker(engine), lock_timeout=30)
    writer.start()
    await asyncio.to_thread(barrier, ready_dir, "ready", tag, peers)
    for batch, start in enumerate(range(0, count, 25)):
        await asyncio.gather(*(writer.append(entry(tag, i)) for i in range(start, start + 25)))
        await asyncio.to_thread(barrier, ready_dir, f"batch{batch}", tag, peers)
    await writer.close()
    engine.dispose()
    print(writer.transactions)


if __name__ == "__main__":
    asyncio.run(
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]))
    )

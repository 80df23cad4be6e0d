"""Quotas shared through a real Redis: exact across processes, degraded, then recovered."""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import time
from collections.abc import Iterator
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

import pytest
from prometheus_client import REGISTRY

from guichet.quota import QuotaDecision, QuotaService
from tests.support.postgres import free_port
from tests.support.redis import RedisServer

# A short timeout for the hung-Redis test, so that one timeout is clearly told from none.
HUNG = 0.2

pytestmark = pytest.mark.redis

INTERVAL = 0.2
# For tests whose subject is not the timeout: a loaded CI box can stall an event loop longer
# than the production timeout, and a spurious degradation would blur what they count.
STEADY = 2.0


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A server this test may stop, pause and restart."""
    server = RedisServer().start()
    yield server
    server.stop()


def gauge() -> float | None:
    return REGISTRY.get_sample_value("guichet_quota_degraded")


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(name)]


async def timed(service: QuotaService, key: str, limit: int) -> tuple[QuotaDecision, float]:
    """One call and what it cost; a hang fails the test instead of blocking it."""
    start = time.monotonic()
    decision = await asyncio.wait_for(service.hit(key, limit), timeout=5)
    return decision, time.monotonic() - start


async def wait_recovered(service: QuotaService, within: float) -> float:
    """Seconds until the service is back on Redis (polled every 10 ms, at most ``within``)."""
    start = time.monotonic()
    for _ in range(math.ceil(within / 0.01)):
        if not service.degraded:
            break
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def _worker(
    url: str, key: str, limit: int, callers: int, barrier: Barrier, results: Queue[tuple[int, int]]
) -> None:
    """One gateway worker process: its own QuotaService, ``callers`` concurrent calls."""

    async def main() -> list[QuotaDecision]:
        service = QuotaService(url, workers=2, redis_timeout=STEADY)
        assert await service.check()
        await asyncio.to_thread(barrier.wait, 30)
        decisions = await asyncio.gather(*(service.hit(key, limit) for _ in range(callers)))
        await service.aclose()
        return decisions

    decisions = asyncio.run(main())
    results.put((sum(d.allowed for d in decisions), sum(d.degraded for d in decisions)))


def test_two_worker_processes_admit_exactly_the_limit(redis_server: RedisServer) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results: Queue[tuple[int, int]] = ctx.Queue()
    key, limit = "h-two-procs:impot-particulier", 20
    procs = [
        ctx.Process(target=_worker, args=(redis_server.url, key, limit, 25, barrier, results))
        for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(10)
        assert proc.exitcode == 0

    assert sum(degraded for _, degraded in outcomes) == 0
    assert sum(admitted for admitted, _ in outcomes) == limit

    async def late_call() -> QuotaDecision:
        service = QuotaService(redis_server.url, workers=2, redis_timeout=STEADY)
        try:
            return await service.hit(key, limit)
        finally:
            await service.aclose()

    late = asyncio.run(late_call())
    assert not late.allowed
    assert late.retry_after is not None
    assert 1 <= late.retry_after <= 60


def test_counts_are_shared_and_headers_reflect_them(redis_server: RedisServer) -> None:
    async def run() -> tuple[list[QuotaDecision], list[QuotaDecision]]:
        a = QuotaService(redis_server.url, redis_timeout=STEADY)
        b = QuotaService(redis_server.url, redis_timeout=STEADY)
        try:
            first = [await a.hit("h-shared:r2p", 5) for _ in range(3)]
            second = [await b.hit("h-shared:r2p", 5) for _ in range(3)]
        finally:
            await a.aclose()
            await b.aclose()
        return first, second

    first, second = asyncio.run(run())

    assert [d.remaining for d in first] == [4, 3, 2]
    assert [d.allowed for d in second] == [True, True, False]
    assert [d.remaining for d in second] == [1, 0, 0]
    assert second[-1].retry_after is not None
    assert 59 <= second[-1].retry_after <= 60


def test_stopped_redis_degrades_to_a_worker_share_and_recovers_on_restart(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="guichet.quota")
    limit, workers = 10, 2
    share = math.ceil(limit / workers)

    async def run() -> None:
        # A stopped Redis refuses connections at once, whatever the timeout.
        service, other_worker = (
            QuotaService(
                own_redis.url, workers=workers, recovery_interval=INTERVAL, redis_timeout=STEADY
            )
            for _ in range(2)
        )
        try:
            before = await service.hit("h-deg:impot-particulier", limit)
            assert before.allowed
            assert not before.degraded
            assert not service.degraded

            own_redis.stop()
            first, cost = await timed(service, "h-deg:impot-particulier", limit)
            assert cost < 1.0
            assert first.allowed
            assert first.degraded
            assert service.degraded
            assert gauge() == 1.0

            start = time.monotonic()
            rest = [await service.hit("h-deg:impot-particulier", limit) for _ in range(3 * limit)]
            assert time.monotonic() - start < 0.5  # no call waits on the dead Redis
            assert all(d.degraded for d in rest)
            assert 1 + sum(d.allowed for d in rest) == share
            refused = next(d for d in rest if not d.allowed)
            assert refused.retry_after is not None
            assert refused.retry_after >= 1
            assert events(caplog, "quota.degraded")
            assert len(events(caplog, "quota.degraded")) == 1

            own_redis.restart()  # same port, empty dataset
            waited = await wait_recovered(service, within=10 * INTERVAL)
            assert not service.degraded
            assert waited < 3 * INTERVAL
            assert gauge() == 0.0
            assert len(events(caplog, "quota.recovered")) == 1

            # Back on Redis: what this worker counts, the other worker sees.
            mine = [await service.hit("h-deg:r2p", limit) for _ in range(4)]
            theirs = [await other_worker.hit("h-deg:r2p", limit) for _ in range(limit)]
            assert not any(d.degraded for d in mine + theirs)
            assert sum(d.allowed for d in theirs) == limit - 4
        finally:
            await service.aclose()
            await other_worker.aclose()

    asyncio.run(run())


def test_hung_redis_costs_one_timeout_then_nothing(own_redis: RedisServer) -> None:
    """A paused Redis accepts connections but never answers: only the first call pays."""

    async def run() -> None:
        service = QuotaService(
            own_redis.url, workers=2, recovery_interval=INTERVAL, redis_timeout=HUNG
        )
        try:
            assert not (await service.hit("h-hung:r2p", 100)).degraded
            own_redis.pause()
            first, cost = await timed(service, "h-hung:r2p", 100)
            assert cost < 1.0
            assert first.degraded
            assert first.allowed

            # Any call that touched Redis would wait at least its read timeout.
            start = time.monotonic()
            later = [await service.hit("h-hung:r2p", 100) for _ in range(60)]
            assert time.monotonic() - start < HUNG
            assert all(d.degraded for d in later)
            assert sum(d.allowed for d in later) == 50 - 1

            own_redis.resume()
            await wait_recovered(service, within=10 * INTERVAL)
            assert not service.degraded
            assert not (await service.hit("h-hung:r2p", 100)).degraded
        finally:
            await service.aclose()

    asyncio.run(run())


def test_redis_absent_at_start_then_arriving() -> None:
    port = free_port()
    server = RedisServer(port)

    async def run() -> None:
        service = QuotaService(server.url, recovery_interval=INTERVAL, redis_timeout=STEADY)
        try:
            decision, cost = await timed(service, "h-late:r2p", 3)
            assert cost < 1.0
            assert decision.allowed
            assert decision.degraded
            assert not await service.check()
            server.start()
            await wait_recovered(service, within=10 * INTERVAL)
            assert not service.degraded
            assert await service.check()
            assert not (await service.hit("h-late:r2p", 3)).degraded
        finally:
            await service.aclose()

    try:
        asyncio.run(run())
    finally:
        server.stop()

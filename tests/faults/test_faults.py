"""Faults under load on two gateway workers (issue 13): Redis killed and restarted empty,
Redis hung, PostgreSQL restarted and stopped, a worker SIGKILLed. Each time: never more than
the quota in any window, answers 200, 429 or a 503 with Retry-After and a stable code (never
a 500), no answer without its journal record, the operator told once per state change."""

from __future__ import annotations

import os
import re
import signal
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.faults.conftest import FAULT_CODES, WINDOW, WORKERS, Answer, Faults, Load

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

RATELIMIT = re.compile(r'^"[a-z0-9]+";r=(\d+);t=(\d+)$')
POLICY = re.compile(r'^"[a-z0-9]+";q=(\d+);w=(\d+)$')


def max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, first = 0, 0
    for last, at in enumerate(times):
        while times[first] <= at - window:
            first += 1
        best = max(best, last - first + 1)
    return best


def check_answers(faults: Faults, load: Load, limit: int, allowed: set[int]) -> list[float]:
    """What every fault test asserts; returns the admission times (the journal's)."""
    statuses = Counter(a.status for a in load.answers)
    assert set(statuses) <= allowed, statuses
    assert 500 not in statuses
    for a in load.answers:
        if a.status == 503:
            assert a.code in FAULT_CODES, a
            assert a.retry_after is not None
            assert int(a.retry_after) >= 1, a
        if a.status == 429:
            assert a.code == "quota_exceeded"
            assert a.retry_after is not None
            assert int(a.retry_after) >= 1
            assert a.ratelimit is not None
            assert RATELIMIT.match(a.ratelimit)[1] == "0", a  # type: ignore[index]
        if a.status == 200:
            assert a.ratelimit is not None
            assert a.policy is not None
            remaining = int(RATELIMIT.match(a.ratelimit)[1])  # type: ignore[index]
            policy = int(POLICY.match(a.policy)[1])  # type: ignore[index]
            assert remaining < policy <= limit, a
    records = faults.records(load.partner)
    served = [a for a in load.answers if a.status == 200]
    # No answer without its record.
    for a in served:
        assert a.correlation_id in records, a
        assert records[a.correlation_id][1:] == ("ok", 200)
    admitted = [at for at, outcome, _ in records.values() if outcome == "ok"]
    busiest = max_in_any_window(admitted, WINDOW)
    assert busiest <= limit
    print(f"\nfigures: answers={dict(statuses)} busiest_{WINDOW}s_window={busiest} limit={limit}")
    return admitted


def log_since(faults: Faults, offset: int) -> str:
    return faults.gateway.log()[offset:]


def between(answers: list[Answer], start: float, end: float) -> list[Answer]:
    return [a for a in answers if start <= a.started < end]


def test_redis_killed_and_restarted_empty_under_load(faults: Faults) -> None:
    limit = 30
    partner, token = faults.partner("Commune de Redis tué", limit)
    offset = len(faults.gateway.log())
    redis = faults.redis
    with Load(faults, partner, token) as load:
        time.sleep(3)
        redis.proc.kill()  # type: ignore[union-attr]
        first_kill = time.time()
        time.sleep(2)
        redis.restart()  # same port, empty
        first_back = time.time()
        time.sleep(9)  # the first calls' window ends, replayed or not: calls admitted again
        redis.proc.kill()  # type: ignore[union-attr]
        second_kill = time.time()
        time.sleep(4)
        degraded_metrics = faults.metrics()
        time.sleep(13)  # beyond the hold (a window and a heartbeat): the shares apply
        redis.restart()
        second_back = time.time()
        time.sleep(4)

    admitted = check_answers(faults, load, limit, {200, 429, 503})
    answers = load.answers
    assert len(admitted) >= 2 * limit
    # The calls of before the first kill were replayed: the restarted Redis did not admit
    # anybody before their window was over.
    first = sorted(at for at in admitted if at < first_kill)
    assert len(first) == limit
    assert all(at > first[0] + WINDOW for at in admitted if first_kill < at < second_kill)
    assert any(a.status == 200 for a in between(answers, first_back, second_kill))
    # After the hold, each worker admits within its share, announced as the policy; never
    # before: until then, what the other worker admitted through Redis may fill the window.
    hold = WINDOW + WINDOW / 60 + 3 * 1.0 + 0.25 + 0.25
    outage = between(answers, second_kill, second_back)
    share = f'"10s";q={limit // WORKERS};w={WINDOW}'
    degraded = [a for a in outage if a.status == 200]
    assert degraded, Counter((a.status, a.code, a.policy) for a in outage)
    assert {a.policy for a in degraded} == {share}
    assert min(a.started for a in degraded) > second_kill + hold - 0.5
    assert {a.code for a in outage if a.started < second_kill + hold - 0.5} <= {
        "quota_unavailable",
        "",
    }
    # Redis came back empty, and the degraded admissions were replayed into it: no call is
    # admitted before their window is over, the full limit is announced again.
    after = between(answers, second_back + 2, time.time())
    assert all(
        a.started > min(d.started for d in degraded) + WINDOW for a in after if a.status == 200
    )
    assert any(a.status == 429 and a.policy == f'"10s";q={limit};w={WINDOW}' for a in after)
    assert any(a.code == "quota_unavailable" for a in answers)

    # Both workers' samples, aggregated: the degraded state, the refusals by code.
    assert "guichet_quota_degraded 1.0" in degraded_metrics
    assert "guichet_gateway_workers 2.0" in degraded_metrics
    assert 'outcome="quota_unavailable"' in degraded_metrics
    assert 'outcome="quota_exceeded"' in degraded_metrics
    log = log_since(faults, offset)
    assert log.count("quota.degraded") >= 2 * WORKERS
    assert log.count("quota.recovered") >= 2 * WORKERS
    assert "refused=" in log
    assert "Traceback" not in log


def test_hung_redis_costs_a_timeout_once_then_nothing(faults: Faults) -> None:
    limit = 100_000
    partner, token = faults.partner("Commune de Redis figé", limit)
    offset = len(faults.gateway.log())
    with Load(faults, partner, token) as load:
        time.sleep(2)
        faults.redis.pause()
        paused = time.time()
        try:
            time.sleep(1.5)
            probes = []
            for _ in range(3):
                started = time.monotonic()
                health = faults.health()
                probes.append(time.monotonic() - started)
                assert health.status_code == 200
                assert health.json()["quota"] == "degraded"
            time.sleep(2)
        finally:
            faults.redis.resume()
        resumed = time.time()
        time.sleep(4)

    check_answers(faults, load, limit, {200, 503})
    # After the first detection, calls do not wait on Redis at all.
    after = [a for a in between(load.answers, paused + 1.0, resumed) if a.status]
    assert len(after) >= 20
    assert all(a.status == 503 and a.code == "quota_unavailable" for a in after)
    median = statistics.median(a.elapsed for a in after)
    print(
        f"figures: hung: median={median * 1000:.1f}ms "
        f"max={max(a.elapsed for a in after) * 1000:.0f}ms "
        f"healthz_max={max(probes) * 1000:.0f}ms calls={len(after)}"
    )
    assert median < 0.05
    assert sum(a.elapsed < 0.2 for a in after) >= 0.95 * len(after)
    assert max(probes) < 0.5
    assert any(a.status == 200 for a in between(load.answers, resumed + 3, time.time()))
    log = log_since(faults, offset)
    assert WORKERS <= log.count("quota.degraded") <= 2 * WORKERS
    assert "Traceback" not in log


def test_postgresql_restarted_then_stopped(faults: Faults) -> None:
    limit = 100_000
    partner, token = faults.partner("Commune de la base arrêtée", limit)
    offset = len(faults.gateway.log())
    with Load(faults, partner, token) as load:
        time.sleep(2)
        faults.pg.halt()
        faults.pg.resume()  # a restart
        time.sleep(3)
        faults.pg.halt()
        stopped = time.time()
        time.sleep(1)
        health = faults.health()
        time.sleep(9)  # stopped 10 s in all, as the issue measured
        resuming = time.time()
        faults.pg.resume()
        back = time.time()
        time.sleep(5)

    assert health.status_code == 503
    assert health.headers["Retry-After"]
    check_answers(faults, load, limit, {200, 503})
    outage = between(load.answers, stopped + 0.5, resuming)
    assert outage
    assert all(a.status == 503 for a in outage), [
        (round(a.started - stopped, 3), round(a.elapsed, 3), a.status, a.code)
        for a in outage
        if a.status != 503
    ]
    assert {a.code for a in outage} <= {"database_unavailable", "journal_unavailable"}
    assert any(a.status == 200 for a in between(load.answers, back + 3, time.time()))
    log = log_since(faults, offset)
    assert "Traceback" not in log
    assert "internal_error" not in log
    # Each state change once per worker and per outage (a restart may be seen or not).
    for lost, back_event in [
        ("gateway.database_unreachable", "gateway.database_back"),
        ("journal:write:failed", "journal:write:recovered"),
    ]:
        assert 1 <= log.count(lost) <= 2 * WORKERS, log
        assert log.count(back_event) == log.count(lost), log
    assert "refused=" in log
    assert len(log.splitlines()) < 100, log
    print(f"figures: database outage: log_lines={len(log.splitlines())}")


def test_a_killed_worker_is_logged_and_replaced(faults: Faults) -> None:
    limit = 100_000
    partner, token = faults.partner("Commune du processus tué", limit)
    offset = len(faults.gateway.log())
    before = faults.gateway.worker_pids()
    assert len(before) == WORKERS
    victim = min(before)
    with Load(faults, partner, token) as load:
        time.sleep(2)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pids = faults.gateway.worker_pids()
            if len(pids) == WORKERS and victim not in pids:
                break
            time.sleep(0.1)
        faults.gateway.wait_all_workers(
            lambda r: r.status_code == 200 and r.json()["workers"] == WORKERS, timeout=30
        )
        time.sleep(2)

    after = faults.gateway.worker_pids()
    assert len(after) == WORKERS
    assert victim not in after
    # Reaped: no zombie left behind.
    assert not Path(f"/proc/{victim}").exists()
    # Calls in flight on the killed worker lose their connection; none is answered 500.
    check_answers(faults, load, limit, {0, 200})
    assert any(a.status == 200 for a in load.answers if a.started > time.time() - 2)
    log = log_since(faults, offset)
    assert "workers.died origin=sandbox slot=" in log
    assert f"pid={victim}" in log
    assert "workers.replaced" in log
    metrics = faults.metrics()
    assert "guichet_gateway_workers 2.0" in metrics
    assert "guichet_gateway_journal_seconds_count" in metrics
    assert "guichet_gateway_database_unreachable 0.0" in metrics

"""Quotas on the in-memory moving window, and the RateLimit header fields."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from guichet.quota import QuotaDecision, QuotaService, ratelimit_headers, share_of

# RFC 9651 list of one item: a string with integer parameters.
SF_ITEM = re.compile(r'^"(?P<name>[a-z0-9]+)"(?P<params>(;[a-z]+=\d+)+)$')


def params(field: str) -> dict[str, int]:
    match = SF_ITEM.match(field)
    assert match, field
    pairs = (p.split("=") for p in match["params"].lstrip(";").split(";"))
    return {k: int(v) for k, v in pairs}


def hits(service: QuotaService, key: str, limit: int, n: int) -> list[QuotaDecision]:
    async def run() -> list[QuotaDecision]:
        return [await service.hit(key, limit) for _ in range(n)]

    return asyncio.run(run())


def test_admits_exactly_the_limit_then_refuses_until_a_slot_frees() -> None:
    service = QuotaService(None)

    decisions = hits(service, "h1:impot-particulier", 5, 7)

    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0, 0, 0]
    refused = decisions[5]
    assert refused.limit == 5
    assert refused.retry_after is not None
    assert 59 <= refused.retry_after <= 61
    assert 58.0 < refused.reset_after <= 61.0
    assert all(d.retry_after is None for d in decisions[:5])
    assert not any(d.degraded for d in decisions)
    assert not service.degraded


def test_keys_are_counted_separately() -> None:
    service = QuotaService(None)

    async def run() -> tuple[list[bool], bool, bool]:
        first = [(await service.hit("h1:impot-particulier", 2)).allowed for _ in range(3)]
        other_api = (await service.hit("h1:r2p", 2)).allowed
        other_habilitation = (await service.hit("h2:impot-particulier", 2)).allowed
        return first, other_api, other_habilitation

    first, other_api, other_habilitation = asyncio.run(run())

    assert first == [True, True, False]
    assert other_api
    assert other_habilitation


def test_window_moves_one_call_at_a_time() -> None:
    """A moving window frees the oldest call's slot, not the whole quota at a boundary."""
    service = QuotaService(None, window=1)

    async def run() -> list[QuotaDecision]:
        start = time.monotonic()
        first = await service.hit("k", 2)
        await asyncio.sleep(0.5)
        second = await service.hit("k", 2)
        full = await service.hit("k", 2)
        await asyncio.sleep(max(0.0, start + 1.05 - time.monotonic()))
        after_first_left = await service.hit("k", 2)
        still_full = await service.hit("k", 2)
        return [first, second, full, after_first_left, still_full]

    first, second, full, after_first_left, still_full = asyncio.run(run())

    assert first.allowed
    assert second.allowed
    assert not full.allowed
    # The first call leaves the window about 0.5 s after the refusal.
    assert 0.3 < full.reset_after < 0.6
    assert full.retry_after == 1
    assert after_first_left.allowed
    assert not still_full.allowed


def test_concurrent_callers_get_exactly_the_limit() -> None:
    service = QuotaService(None)

    async def run() -> list[QuotaDecision]:
        return await asyncio.gather(*(service.hit("h1:r2p", 20) for _ in range(50)))

    decisions = asyncio.run(run())

    assert sum(d.allowed for d in decisions) == 20


def test_without_redis_each_worker_keeps_its_share() -> None:
    """Three workers counting alone: 10 = 4 + 3 + 3, the remainder to the first slots, so the
    shares add up to the limit; each announces the share it applies."""
    admitted = []
    for slot in range(3):
        service = QuotaService(None, workers=3, slot=slot)
        decisions = hits(service, "h1:impot-particulier", 10, 6)
        admitted.append(sum(d.allowed for d in decisions))
        assert decisions[0].limit == admitted[-1]
        assert not decisions[-1].degraded
        assert ratelimit_headers(decisions[-1])["RateLimit"].startswith('"minute";r=0;')

    assert admitted == [4, 3, 3]
    assert share_of(10, 3, 0) + share_of(10, 3, 1) + share_of(10, 3, 2) == 10
    assert [share_of(1, 2, s) for s in (0, 1)] == [1, 0]


def test_a_refusal_announces_nothing_left() -> None:
    decision = QuotaDecision(
        allowed=False, limit=5, remaining=2, reset_after=3.0, retry_after=3, degraded=False
    )

    assert params(ratelimit_headers(decision)["RateLimit"])["r"] == 0


def test_zero_limit_refuses_everything() -> None:
    decision = hits(QuotaService(None), "h1:r2p", 0, 1)[0]

    assert not decision.allowed
    assert decision.retry_after == 60


@pytest.mark.parametrize(("kwargs"), [{"workers": 0}, {"window": 0}, {"slot": 2, "workers": 2}])
def test_rejects_nonsense_settings(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"at least|between"):
        QuotaService(None, **kwargs)


def test_headers_of_an_admitted_call() -> None:
    service = QuotaService(None)
    decision = hits(service, "h1:impot-particulier", 500, 3)[-1]

    headers = ratelimit_headers(decision)

    assert headers["RateLimit-Policy"] == '"minute";q=500;w=60'
    # The window is counted a second long (docs/architecture.md): t never promises early.
    assert headers["RateLimit"] == '"minute";r=497;t=61'
    assert set(headers) == {"RateLimit-Policy", "RateLimit"}


def test_headers_of_a_refused_call_never_promise_before_retry_after() -> None:
    decision = QuotaDecision(
        allowed=False, limit=200, remaining=0, reset_after=12.2, retry_after=13, degraded=False
    )

    headers = ratelimit_headers(decision)

    assert params(headers["RateLimit-Policy"]) == {"q": 200, "w": 60}
    assert params(headers["RateLimit"]) == {"r": 0, "t": 13}


def test_headers_name_other_windows_by_their_length() -> None:
    decision = QuotaDecision(
        allowed=True,
        limit=3,
        remaining=2,
        reset_after=0.4,
        retry_after=None,
        degraded=False,
        window=5,
    )

    headers = ratelimit_headers(decision)

    assert headers == {"RateLimit-Policy": '"5s";q=3;w=5', "RateLimit": '"5s";r=2;t=1'}


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:pw@redis.example:6380/1", "unix:///run/r.sock"]
)
def test_accepts_redis_py_urls_without_connecting(url: str) -> None:
    assert not QuotaService(url).degraded


def test_rejects_a_url_that_is_not_redis() -> None:
    with pytest.raises(ValueError, match="unsupported Redis URL scheme"):
        QuotaService("memcached://127.0.0.1:11211")

"""Per-habilitation, per-API call quotas: a moving window shared through Redis, kept per worker
when Redis is away.

SPEC §6 [000 §9.2, 001 §9.2, 002 §9.2]: each API is limited to a number of calls per minute
set on the habilitation. Counting is the ``limits`` library's moving window (no burst at a
window edge), in memory by default and in Redis when a URL is configured, so that every
gateway worker shares one count per ``habilitation:api`` key.

If Redis becomes unreachable or errors, no call fails because of it: each worker keeps
counting in its own memory with ``ceil(limit / workers)`` so that the workers together never
admit more than the limit, reports the state (log event, ``guichet_quota_degraded`` gauge,
``QuotaService.degraded``), and a background probe returns to Redis by itself once a PING
answers. Redis is contacted with short timeouts and no retry loop, so a dead Redis costs the
first failing call at most about one timeout and the calls after it nothing.

The gateway counts its calls with it; the portal, its own attempts (``portal.throttle``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from prometheus_client import Gauge
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# Connect and read timeout towards Redis (seconds): what the first call pays when Redis hangs.
# Long enough not to mistake a busy event loop for a dead Redis (a false alarm lets each
# worker admit its share on top of what Redis counted: 0.2 s did that on a loaded 2-core
# machine), short enough to stay under a partner's patience. A refused connection fails at
# once whatever this is. A URL query (``?socket_timeout=…``) overrides it.
REDIS_TIMEOUT = 1.0
KEY_PREFIX = "guichet:quota"

DEGRADED = Gauge(
    "guichet_quota_degraded",
    "1 while quotas are counted per worker in memory because Redis is unreachable, else 0.",
    multiprocess_mode="livemax",
)


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    """The outcome of one call against its quota.

    ``limit`` is the habilitation's limit for the window; ``remaining`` what this worker
    knows is left (of its share when degraded); ``reset_after`` the seconds until the oldest
    call in the window leaves it and frees a slot (0 when the window is empty);
    ``retry_after`` whole seconds (≥ 1) to wait, only when refused.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: int | None
    degraded: bool
    window: int = WINDOW_SECONDS


def ratelimit_headers(decision: QuotaDecision) -> dict[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` fields, draft-ietf-httpapi-ratelimit-headers-11 §3–4.

    Structured-field lists (RFC 9651) of one item named after the window:
    ``RateLimit-Policy: "minute";q=<limit>;w=60`` (§3.1: quota ``q``, window ``w`` in
    seconds) and ``RateLimit: "minute";r=<remaining>;t=<seconds>`` (§4.1: available quota
    ``r``; effective window ``t``, "the number of seconds within which the client can use no
    more than the available quota" — in a moving window, until the oldest call leaves it).
    ``t`` is never below ``Retry-After``, as §6 asks. ``Retry-After`` itself is the
    gateway's, from ``decision.retry_after``.
    """
    name = "minute" if decision.window == WINDOW_SECONDS else f"{decision.window}s"
    t = math.ceil(decision.reset_after) if decision.reset_after > 0 else decision.window
    if decision.retry_after is not None:
        t = max(t, decision.retry_after)
    return {
        "RateLimit-Policy": f'"{name}";q={decision.limit};w={decision.window}',
        "RateLimit": f'"{name}";r={max(0, decision.remaining)};t={t}',
    }


def _limits_uri(redis_url: str) -> str:
    """The ``limits`` async storage scheme for a redis-py URL."""
    scheme = urlsplit(redis_url).scheme
    if scheme in ("redis", "rediss"):
        return f"async+{redis_url}"
    if scheme == "unix":
        return "async+redis+" + redis_url
    raise ValueError(f"unsupported Redis URL scheme {scheme!r}")


class QuotaService:
    """Moving-window quotas per key (the gateway passes ``f"{habilitation_id}:{api}"``).

    One instance per worker process, used from that worker's event loop; ``workers`` is the
    number of gateway workers sharing the limit. Without Redis each worker counts alone, so
    it applies the same per-worker share as in degraded mode.
    """

    def __init__(
        self,
        redis_url: str | None,
        *,
        workers: int = 1,
        recovery_interval: float = 1.0,
        window: int = WINDOW_SECONDS,
        redis_timeout: float = REDIS_TIMEOUT,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if window < 1:
            raise ValueError("window must be at least one second")
        self._workers = workers
        self._window = window
        self._recovery_interval = recovery_interval
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._items: dict[int, RateLimitItem] = {}
        self._degraded = False
        self._watcher: asyncio.Task[None] | None = None
        self._pool: aioredis.ConnectionPool | None = None
        self._redis: aioredis.Redis | None = None
        self._shared: MovingWindowRateLimiter | None = None
        if redis_url:
            storage_uri = _limits_uri(redis_url)
            # ``limits`` is handed our own pool: left to itself it builds a redis-py client
            # that retries ten times with backoff, so a dead Redis would hold every call for
            # seconds. Here: short timeouts, one immediate reconnect on a connection error
            # (a pooled socket left over from a Redis restart), none on a timeout.
            self._pool = aioredis.ConnectionPool.from_url(
                redis_url,
                socket_connect_timeout=redis_timeout,
                socket_timeout=redis_timeout,
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            )
            self._redis = aioredis.Redis(connection_pool=self._pool)
            options: dict[str, Any] = {"connection_pool": self._pool}
            storage = RedisStorage(
                storage_uri, implementation="redispy", key_prefix=KEY_PREFIX, **options
            )
            self._shared = MovingWindowRateLimiter(storage)

    @property
    def degraded(self) -> bool:
        """True while Redis is configured but unreachable and counts are per worker."""
        return self._degraded

    async def hit(self, key: str, limit_per_minute: int) -> QuotaDecision:
        """Count one call for ``key`` and say whether it is within ``limit_per_minute``.

        Never raises because of Redis: a failure switches to the per-worker fallback.
        """
        if limit_per_minute <= 0:
            return QuotaDecision(
                allowed=False,
                limit=0,
                remaining=0,
                reset_after=float(self._window),
                retry_after=self._window,
                degraded=self._degraded,
                window=self._window,
            )
        if self._shared is not None and not self._degraded:
            try:
                return await self._decide(
                    self._shared, key, limit_per_minute, limit_per_minute, degraded=False
                )
            except Exception as exc:  # any storage failure degrades; none reaches the caller
                self._enter_degraded(exc)
        share = math.ceil(limit_per_minute / self._workers)
        return await self._decide(
            self._local, key, limit_per_minute, share, degraded=self._shared is not None
        )

    async def check(self) -> bool:
        """Whether the shared counters answer (always true without Redis); for readiness."""
        if self._redis is None:
            return True
        try:
            await self._redis.ping()
        except Exception:
            return False
        return True

    async def aclose(self) -> None:
        """Stop the recovery probe and close the Redis connections."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self._pool is not None:
            await self._pool.aclose()

    def _item(self, amount: int) -> RateLimitItem:
        item = self._items.get(amount)
        if item is None:
            item = self._items[amount] = RateLimitItemPerSecond(amount, self._window)
        return item

    async def _decide(
        self,
        limiter: MovingWindowRateLimiter,
        key: str,
        limit: int,
        enforced: int,
        *,
        degraded: bool,
    ) -> QuotaDecision:
        item = self._item(enforced)
        allowed = await limiter.hit(item, key)
        stats = await limiter.get_window_stats(item, key)
        remaining = max(0, min(stats.remaining, enforced))
        # ``limits`` stamps entries with time.time() (wall clock), so the reset is read on
        # the same clock, not on guichet's injected Clock.
        reset_after = max(0.0, stats.reset_time - time.time()) if remaining < enforced else 0.0
        return QuotaDecision(
            allowed=allowed,
            limit=limit,
            remaining=remaining,
            reset_after=reset_after,
            retry_after=None if allowed else max(1, math.ceil(reset_after)),
            degraded=degraded,
            window=self._window,
        )

    def _enter_degraded(self, exc: Exception) -> None:
        if self._degraded:
            return
        self._degraded = True
        DEGRADED.set(1)
        log.warning(
            "quota.degraded error=%s detail=%r workers=%d recovery_interval=%s",
            type(exc).__name__,
            str(exc)[:200],
            self._workers,
            self._recovery_interval,
        )
        self._watcher = asyncio.get_running_loop().create_task(self._watch_recovery())

    async def _watch_recovery(self) -> None:
        """While degraded, one PING every ``recovery_interval``; back to Redis on the first PONG."""
        started = time.monotonic()
        while True:
            await asyncio.sleep(self._recovery_interval)
            if await self.check():
                break
        self._degraded = False
        self._watcher = None
        DEGRADED.set(0)
        log.warning("quota.recovered degraded_seconds=%.1f", time.monotonic() - started)

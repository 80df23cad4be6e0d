"""Per-habilitation, per-API call quotas: a moving window shared through Redis, never more
than the quota in any window, whatever Redis does (issue 13).

SPEC §6 [000 §9.2, 001 §9.2, 002 §9.2]: each API is limited to a number of calls per minute
set on the habilitation. The rule, and why it holds, is in ``docs/architecture.md``
("Quotas across faults"). In short:

- every worker keeps a **ledger** of its own admissions of the last window (per key);
- with Redis, one Lua script per call counts the window (a sorted set of admission times,
  Redis's clock) and admits only below the limit **less the shares of the workers Redis
  cannot vouch for** (no fresh heartbeat: degraded, stalled, dead); a worker of the group
  that has not replayed its ledger into this Redis dataset (a Redis restarted empty) stops
  every admission until it has (503 ``quota_unavailable``);
- without Redis, a worker admits from its ledger up to its **share** (the limit split over
  the workers, remainders to the first slots: the shares add up to the limit), but only
  once a whole window (plus the heartbeat's lifetime) has passed since it lost Redis: what
  the others admitted through Redis meanwhile can no longer be in the window. Until then it
  answers 503 ``quota_unavailable`` with ``Retry-After``;
- when Redis answers again, the worker replays its ledger into it (same members: idempotent)
  before its heartbeat says it is back: a Redis that came back empty is not a fresh window.

Redis calls have a short timeout and no retry loop; the first failure opens the breaker
(degraded), after which calls do not touch Redis at all; a background task probes it once
per ``recovery_interval`` and closes the breaker after the replay. The state changes are
logged once each (``quota.degraded``, ``quota.recovered`` with the calls refused meanwhile)
and exported (``guichet_quota_degraded``).

The gateway counts its calls with it; the portal, its own attempts (``portal.throttle``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from prometheus_client import Gauge
from redis.commands.core import AsyncScript

from guichet.errors import QuotaUnavailable
from guichet.logs import event
from guichet.settings import Settings

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# Connect and read timeout towards Redis (seconds): what a call in flight pays when Redis
# hangs, once (the breaker then opens). A false alarm (a busy event loop) costs that worker
# a second of 503s, never an admission too many. ``GUICHET_REDIS_TIMEOUT`` sets it.
REDIS_TIMEOUT = 0.25
KEY_PREFIX = "guichet:quota"

DEGRADED = Gauge(
    "guichet_quota_degraded",
    "1 while quotas are counted per worker in memory because Redis is unreachable, else 0.",
    multiprocess_mode="livemax",
)

# KEYS[1]: the key's window (sorted set: member → admission time, seconds).
# ARGV: window, limit, workers, group prefix, member, this worker's slot.
# Returns {status, now, count, effective limit, oldest time, time a slot frees}; status is
# 1 admitted, 0 refused, -1 a slot has not replayed its ledger into this dataset (-2: this
# worker's own slot). Numbers travel as strings (Lua would truncate them to integers).
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local workers = tonumber(ARGV[3])
local prefix = ARGV[4]
local slot = tonumber(ARGV[6])
local base = math.floor(limit / workers)
local extra = limit % workers
local reserve = 0
for j = 0, workers - 1 do
  if redis.call('EXISTS', prefix .. 'synced:' .. j) == 0 then
    if j == slot then return {-2, tostring(now), 0, '0', '0', '0'} end
    return {-1, tostring(now), 0, '0', '0', '0'}
  end
  local alive = tonumber(redis.call('GET', prefix .. 'alive:' .. j) or '0')
  if alive < now then
    reserve = reserve + base
    if j < extra then reserve = reserve + 1 end
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local effective = limit - reserve
local status = 0
if n < effective then
  redis.call('ZADD', KEYS[1], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000) + 1000)
  n = n + 1
  status = 1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local frees = '0'
if status == 0 and effective > 0 then
  local e = redis.call('ZRANGE', KEYS[1], n - effective, n - effective, 'WITHSCORES')
  frees = e[2] or '0'
end
return {status, tostring(now), n, tostring(effective), oldest[2] or '0', frees}
"""


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    """The outcome of one call against its quota.

    ``limit`` is the limit **applied** to this call (the habilitation's, less the shares
    reserved for workers Redis cannot vouch for; this worker's share when degraded): the
    policy announced. ``remaining`` what is left of it, never more than the truth;
    ``reset_after`` the seconds until the oldest call in the window leaves it (0 when the
    window is empty); ``retry_after`` whole seconds (≥ 1) to wait, only when refused.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: int | None
    degraded: bool
    window: int = WINDOW_SECONDS
    at: float = 0.0  # when it was decided (Unix time, Redis's clock or this worker's)


def ratelimit_headers(decision: QuotaDecision) -> dict[str, str]:
    """``RateLimit-Policy`` and ``RateLimit`` fields, draft-ietf-httpapi-ratelimit-headers-11 §3–4.

    Structured-field lists (RFC 9651) of one item named after the window:
    ``RateLimit-Policy: "minute";q=<limit>;w=60`` (§3.1: quota ``q``, window ``w`` in
    seconds) and ``RateLimit: "minute";r=<remaining>;t=<seconds>`` (§4.1: available quota
    ``r``; effective window ``t``, "the number of seconds within which the client can use no
    more than the available quota" — in a moving window, until the oldest call leaves it).
    ``t`` is never below ``Retry-After``, as §6 asks; a refusal says ``r=0``. ``Retry-After``
    itself is the gateway's, from ``decision.retry_after``.
    """
    name = "minute" if decision.window == WINDOW_SECONDS else f"{decision.window}s"
    t = math.ceil(decision.reset_after) if decision.reset_after > 0 else decision.window
    if decision.retry_after is not None:
        t = max(t, decision.retry_after)
    remaining = max(0, decision.remaining) if decision.allowed else 0
    return {
        "RateLimit-Policy": f'"{name}";q={max(0, decision.limit)};w={decision.window}',
        "RateLimit": f'"{name}";r={remaining};t={t}',
    }


def share_of(limit: int, workers: int, slot: int) -> int:
    """Slot ``slot``'s part of ``limit`` among ``workers``: the parts add up to ``limit``."""
    return limit // workers + (1 if slot < limit % workers else 0)


def check_redis_url(redis_url: str) -> None:
    if urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"unsupported Redis URL scheme {urlsplit(redis_url).scheme!r}")


class QuotaService:
    """Moving-window quotas per key (the gateway passes ``f"{habilitation_id}:{api}"``).

    One instance per worker process, used from that worker's event loop. ``workers`` is the
    number of workers sharing the limits, ``slot`` this one's place among them (0 …
    workers − 1, kept by a replacement), ``group`` names them in Redis (the origin: the
    portal's single process does not count as a gateway worker). ``respawned``: this worker
    replaces one that died, whose ledger is lost — its heartbeat waits a window, so that the
    others keep its share aside meanwhile. Without Redis each worker counts alone, to its
    share.
    """

    def __init__(
        self,
        redis_url: str | None,
        *,
        workers: int = 1,
        slot: int = 0,
        group: str = "guichet",
        recovery_interval: float = 1.0,
        window: int = WINDOW_SECONDS,
        redis_timeout: float = REDIS_TIMEOUT,
        respawned: bool = False,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if not 0 <= slot < workers:
            raise ValueError("slot must be between 0 and workers - 1")
        if window < 1:
            raise ValueError("window must be at least one second")
        self._workers = workers
        self._slot = slot
        self._window = window
        # Counted over a little more than the window: any window of ``window`` seconds,
        # measured on timestamps taken a few milliseconds before the decision (the journal's,
        # at the request's arrival), still holds at most the limit.
        self._span = window + max(0.05, window / 60)
        self._recovery_interval = recovery_interval
        self._timeout = redis_timeout
        # A heartbeat lives this long; a worker silent for longer has its share kept aside.
        self._ttl = 3 * recovery_interval + redis_timeout
        # After losing Redis: a window, plus the last heartbeat's lifetime, plus a timeout.
        # Alone (one worker: the portal, `guichet run`), the ledger holds every admission
        # of the key: no other worker's admissions can be missing from it, no wait.
        self._hold = self._span + self._ttl + redis_timeout if workers > 1 else 0.0
        self._prefix = f"{KEY_PREFIX}:{group}:"
        self._member_prefix = f"{slot}:{os.getpid()}:{os.urandom(4).hex()}:"
        self._seq = 0
        self._ledger: dict[str, deque[tuple[float, str]]] = {}
        self._degraded = False
        self._degraded_since = 0.0
        self._hold_until = 0.0
        self._synced = False
        self._replaying = False
        self._alive_from = time.time() + (window if respawned else 0.0)
        self._refused = 0
        self._task: asyncio.Task[None] | None = None
        self._redis: aioredis.Redis | None = None
        self._hit_script: AsyncScript | None = None
        if redis_url:
            check_redis_url(redis_url)
            # Short timeouts, no retry: a dead Redis must not hold a call for seconds.
            self._redis = aioredis.Redis.from_url(
                redis_url,
                socket_connect_timeout=redis_timeout,
                socket_timeout=redis_timeout,
                retry=None,
                retry_on_timeout=False,
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> QuotaService:
        return cls(
            settings.redis_url,
            workers=settings.workers,
            slot=min(settings.worker_slot, settings.workers - 1),
            group=settings.quota_group,
            window=settings.quota_window,
            redis_timeout=settings.redis_timeout,
            respawned=settings.worker_respawned,
        )

    @property
    def degraded(self) -> bool:
        """True while Redis is configured but unreachable: counts are per worker."""
        return self._degraded

    @property
    def refused_while_degraded(self) -> int:
        """Calls refused (429 or 503) since the current outage began (0 when up)."""
        return self._refused if self._degraded else 0

    async def start(self) -> None:
        """Join the group in Redis (replay, heartbeat) and keep its heartbeat, in the
        background; a worker started before Redis is back starts degraded."""
        if self._redis is None or self._task is not None:
            return
        # Taken before the first await: concurrent first calls start it once.
        self._task = asyncio.get_running_loop().create_task(self._watch())
        try:
            await self._sync()
        except Exception as exc:
            self._enter_degraded(exc)

    async def hit(self, key: str, limit_per_minute: int) -> QuotaDecision:
        """Count one call for ``key`` and say whether it is within ``limit_per_minute``.

        Raises ``QuotaUnavailable`` (503) when no admission can be proved safe: Redis lost
        and the previous window not yet over, or a worker not yet replayed into Redis.
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
        if self._redis is None:
            return self._local(key, limit_per_minute, time.time(), degraded=False)
        if self._task is None:
            await self.start()
        if not self._degraded:
            try:
                return await self._shared(key, limit_per_minute)
            except QuotaUnavailable:
                raise
            except Exception as exc:  # any Redis failure opens the breaker
                self._enter_degraded(exc)
        now = time.time()
        if now < self._hold_until or self._replaying:
            self._refused += 1
            wait = min(self._hold_until - now, max(1.0, self._recovery_interval))
            raise QuotaUnavailable(
                "Le décompte partagé des quotas est indisponible ; réessayez dans un instant.",
                retry_after=max(1, math.ceil(wait)),
            )
        decision = self._local(key, limit_per_minute, now, degraded=True)
        if not decision.allowed:
            self._refused += 1
        return decision

    async def check(self) -> bool:
        """Whether the shared counters answer (always true without Redis); one PING."""
        if self._redis is None:
            return True
        try:
            await self._redis.ping()
        except Exception:
            return False
        return True

    async def aclose(self) -> None:
        """Stop the heartbeat and close the Redis connections."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    # -- deciding ----------------------------------------------------------------------

    def _member(self) -> str:
        self._seq += 1
        return f"{self._member_prefix}{self._seq}"

    def _entries(self, key: str, now: float) -> deque[tuple[float, str]]:
        entries = self._ledger.get(key)
        if entries is None:
            entries = self._ledger[key] = deque()
        horizon = now - self._span
        while entries and entries[0][0] <= horizon:
            entries.popleft()
        return entries

    def _local(self, key: str, limit: int, now: float, *, degraded: bool) -> QuotaDecision:
        """This worker's share, counted on its own ledger (its Redis admissions included)."""
        share = share_of(limit, self._workers, self._slot)
        entries = self._entries(key, now)
        allowed = len(entries) < share
        if allowed:
            entries.append((now, self._member()))
        reset_after = entries[0][0] + self._span - now if entries else 0.0
        retry_after = None
        if not allowed:
            if share > 0 and len(entries) >= share:
                frees = entries[len(entries) - share][0] + self._span - now
            else:
                frees = float(self._window)
            retry_after = max(1, math.ceil(frees))
        return QuotaDecision(
            allowed=allowed,
            limit=share,
            remaining=max(0, share - len(entries)),
            reset_after=max(0.0, reset_after),
            retry_after=retry_after,
            degraded=degraded,
            window=self._window,
            at=now,
        )

    async def _shared(self, key: str, limit: int) -> QuotaDecision:
        assert self._redis is not None
        member = self._member()
        for attempt in (1, 2):
            status, now, count, effective, oldest, frees = await self._call_script(
                key, limit, member
            )
            if status == -2 and attempt == 1:
                # Redis came back empty under us: replay first, then decide.
                self._synced = False
                await self._sync()
                continue
            break
        if status < 0:
            raise QuotaUnavailable(
                "Le décompte partagé des quotas se reconstitue ; réessayez dans un instant.",
                retry_after=max(1, math.ceil(self._recovery_interval)),
            )
        allowed = status == 1
        if allowed:
            self._entries(key, now).append((now, member))
        reset_after = oldest + self._span - now if count else 0.0
        retry_after = None
        if not allowed:
            if effective <= 0:
                raise QuotaUnavailable(
                    "Le décompte partagé des quotas se reconstitue ; réessayez dans un instant.",
                    retry_after=max(1, math.ceil(self._recovery_interval)),
                )
            retry_after = max(1, math.ceil(frees + self._span - now))
        return QuotaDecision(
            allowed=allowed,
            limit=effective,
            remaining=max(0, effective - count),
            reset_after=max(0.0, reset_after),
            retry_after=retry_after,
            degraded=False,
            window=self._window,
            at=now,
        )

    async def _call_script(
        self, key: str, limit: int, member: str
    ) -> tuple[int, float, int, int, float, float]:
        assert self._redis is not None
        if self._hit_script is None:
            self._hit_script = self._redis.register_script(_HIT)
        raw = await self._hit_script(
            keys=[f"{self._prefix}w:{key}"],
            args=[self._span, limit, self._workers, self._prefix, member, self._slot],
        )
        status, now, count, effective, oldest, frees = raw
        return (
            int(status),
            float(now),
            int(count),
            int(float(effective)),
            float(oldest),
            float(frees),
        )

    # -- Redis membership: replay, heartbeat, recovery ---------------------------------

    async def _sync(self) -> None:
        """Replay the ledger into Redis (idempotent: same members, same times), then say
        this slot is synced and, unless it must still wait, alive."""
        assert self._redis is not None
        now = time.time()
        pipe = self._redis.pipeline(transaction=True)
        expiry = math.ceil(self._span * 1000) + 1000
        for key in list(self._ledger):
            entries = self._entries(key, now)
            if not entries:
                del self._ledger[key]
                continue
            pipe.zadd(f"{self._prefix}w:{key}", {member: at for at, member in entries})
            pipe.pexpire(f"{self._prefix}w:{key}", expiry)
        pipe.set(f"{self._prefix}synced:{self._slot}", "1")
        self._add_heartbeat(pipe, now)
        await pipe.execute()
        self._synced = True

    def _add_heartbeat(self, pipe: aioredis.client.Pipeline, now: float) -> None:
        # The value is the time it stops vouching (a heartbeat delivered late by a Redis
        # that was paused says nothing about now); the TTL only tidies up.
        if now >= self._alive_from:
            pipe.set(
                f"{self._prefix}alive:{self._slot}",
                f"{now + self._ttl:.6f}",
                ex=math.ceil(self._ttl) + 1,
            )

    async def _beat(self) -> None:
        assert self._redis is not None
        now = time.time()
        if not self._synced or not await self._redis.exists(f"{self._prefix}synced:{self._slot}"):
            self._synced = False
            await self._sync()
            return
        pipe = self._redis.pipeline(transaction=False)
        self._add_heartbeat(pipe, now)
        await pipe.execute()

    async def _watch(self) -> None:
        """Heartbeat while up; while degraded, one probe per interval, and back on Redis
        after the replay."""
        while True:
            await asyncio.sleep(self._recovery_interval)
            if self._degraded:
                # No degraded admission while the replay is in flight: it would be in
                # neither the replay nor the others' reserve once the heartbeat lands.
                self._replaying = True
                try:
                    await self._sync()
                except Exception:  # noqa: S112 - still down; the next probe tries again
                    continue
                finally:
                    self._replaying = False
                self._leave_degraded()
            else:
                try:
                    await self._beat()
                except Exception as exc:
                    self._enter_degraded(exc)
            self._trim()

    def _trim(self) -> None:
        now = time.time()
        for key in list(self._ledger):
            if not self._entries(key, now):
                del self._ledger[key]

    def _enter_degraded(self, exc: Exception) -> None:
        if self._degraded:
            return
        now = time.time()
        self._degraded = True
        self._synced = False
        self._degraded_since = time.monotonic()
        # What the others admitted through Redis until now may fill the window: this
        # worker admits nothing before it is over (docs/architecture.md, the proof).
        self._hold_until = now + self._hold
        self._refused = 0
        DEGRADED.set(1)
        event(
            log,
            "quota.degraded",
            logging.WARNING,
            error=type(exc).__name__,
            workers=self._workers,
            slot=self._slot,
            hold_seconds=f"{self._hold:.1f}",
        )

    def _leave_degraded(self) -> None:
        self._degraded = False
        DEGRADED.set(0)
        refused = self._refused
        self._refused = 0
        event(
            log,
            "quota.recovered",
            logging.WARNING,
            degraded_seconds=f"{time.monotonic() - self._degraded_since:.1f}",
            refused=refused,
            slot=self._slot,
        )

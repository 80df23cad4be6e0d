"""Sign-in and password reset, throttled (issue 11 §4); password hashing, bounded.

Each attempt counts against the client's address and against the account it names, in the
moving window of the portal's ``QuotaService`` (``limits``: in memory, or in Redis when
``GUICHET_REDIS_URL`` is set, so that several portals share the counts). Beyond either
limit the attempt is refused with 429, a French page and ``Retry-After``, before any
password is checked: a guesser spreading over accounts meets the address limit, one
spreading over addresses meets the account limit (besides the lock-out after five failures
in a row, ``AccountService.sign_in``).

argon2 costs 64 MiB and tens of milliseconds of CPU per check: the portal runs at most
``GUICHET_PASSWORD_HASHING_SLOTS`` at once, in worker threads, and the other requests wait
on the event loop without holding a thread. The gateways never hash a password: client
secrets are high-entropy and stored as SHA-256 (``guichet.secrets.hash_secret``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import Request

from guichet.accounts.service import email_key
from guichet.edge import client_ip
from guichet.errors import GuichetError
from guichet.logs import event
from guichet.quota import QuotaService
from guichet.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


class TooManyAttempts(GuichetError):
    status = 429
    code = "too_many_attempts"
    title = "Trop de tentatives"


class Action(StrEnum):
    SIGN_IN = "sign_in"
    PASSWORD_RESET = "password_reset"  # noqa: S105 (a name, not a password)
    # The second factor (issue 14, C4): a code, a key's answer or a recovery code.
    SECOND_FACTOR = "second_factor"


_WORDS = {
    Action.SIGN_IN: "de connexion",
    Action.PASSWORD_RESET: "de réinitialisation du mot de passe",
    Action.SECOND_FACTOR: "de second facteur",
}


@dataclass(frozen=True)
class Limits:
    per_address: int
    per_account: int


class Throttle:
    """Counts attempts per address and per account; ``check`` refuses beyond the limits."""

    def __init__(self, quota: QuotaService, settings: Settings) -> None:
        self.quota = quota
        self.trusted_proxies = list(settings.trusted_proxies)
        self.limits = {
            Action.SIGN_IN: Limits(
                settings.sign_in_attempts_per_address, settings.sign_in_attempts_per_account
            ),
            Action.PASSWORD_RESET: Limits(
                settings.password_resets_per_address, settings.password_resets_per_account
            ),
            # Six digits are guessed a million times slower than they are typed: the same
            # limits as the password, counted apart, per address and per account.
            Action.SECOND_FACTOR: Limits(
                settings.sign_in_attempts_per_address, settings.sign_in_attempts_per_account
            ),
        }
        self.slots = HashingSlots(settings.password_hashing_slots)

    async def check(self, request: Request, action: Action, account: str | None) -> None:
        """Count this attempt; raise ``TooManyAttempts`` when the address or the account
        named (an email address, any case, or an account id) went past its limit in the
        window."""
        limits = self.limits[action]
        # Behind a trusted proxy, the client it relays; otherwise the TCP peer.
        address = client_ip(request.scope, self.trusted_proxies)
        waits: list[int] = []
        decision = await self.quota.hit(f"portal:{action}:address:{address}", limits.per_address)
        if not decision.allowed:
            waits.append(decision.retry_after or 1)
        key = email_key(account)[:320] if account else ""
        if key:
            # Keyed by a digest: the counters' store never holds an address in clear.
            digest = hashlib.sha256(key.encode()).hexdigest()[:32]
            decision = await self.quota.hit(f"portal:{action}:account:{digest}", limits.per_account)
            if not decision.allowed:
                waits.append(decision.retry_after or 1)
        if waits:
            retry_after = max(waits)
            event(
                log,
                "portal.throttled",
                action=str(action),
                client=address,
                retry_after=retry_after,
            )
            raise TooManyAttempts(
                f"Trop de tentatives {_WORDS[action]} depuis votre adresse ou pour ce compte. "
                f"Réessayez dans {retry_after} seconde{'s' if retry_after > 1 else ''}.",
                retry_after=retry_after,
            )


class HashingSlots:
    """At most ``size`` password hashings at once, in worker threads (one limiter per event
    loop: tests run several)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CapacityLimiter]
        self._limiters = weakref.WeakKeyDictionary()

    def limiter(self) -> CapacityLimiter:
        loop = asyncio.get_running_loop()
        found = self._limiters.get(loop)
        if found is None:
            found = self._limiters[loop] = CapacityLimiter(self.size)
        return found

    async def run(self, func: Callable[..., T], *args: object) -> T:
        return await anyio.to_thread.run_sync(partial(func, *args), limiter=self.limiter())


def throttle(request: Request) -> Throttle:
    found = request.app.state.throttle
    assert isinstance(found, Throttle)
    return found


async def hashing(request: Request, func: Callable[..., T], *args: object) -> T:
    """``func(*args)`` — an account operation that hashes or checks a password — in a
    worker thread, within the portal's hashing slots."""
    return await throttle(request).slots.run(func, *args)

"""The injected clock: every notion of "now" in guichet goes through here."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FrozenClock:
    """A clock tests move by hand."""

    def __init__(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._at = at

    def now(self) -> dt.datetime:
        return self._at

    def advance(self, seconds: float) -> None:
        self._at += dt.timedelta(seconds=seconds)

    def set(self, at: dt.datetime) -> None:
        self._at = at


def utc(value: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes; every one we store is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

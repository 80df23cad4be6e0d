"""Server-side portal sessions: a random id in the cookie, its SHA-256 in the database.

Every session (signed in or not) carries a CSRF synchronizer token. Signing in, or out,
replaces the session with a new id and a new CSRF token (no session fixation).
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.models import PortalSession
from guichet.clock import Clock, utc
from guichet.db import transaction
from guichet.secrets import hash_secret

IDLE_TIMEOUT = dt.timedelta(hours=2)
ABSOLUTE_TIMEOUT = dt.timedelta(hours=12)
# last_seen_at is written at most this often (not on every page).
TOUCH_EVERY = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class SessionData:
    """A live session as a request sees it; ``token`` is what the cookie holds."""

    token: str
    user_id: uuid.UUID | None
    csrf_token: str
    auth_method: str | None
    expires_at: dt.datetime

    def csrf_matches(self, submitted: str | None) -> bool:
        """Timing-safe comparison of the submitted CSRF token with the session's."""
        return bool(submitted) and hmac.compare_digest(
            self.csrf_token.encode(), (submitted or "").encode()
        )


class SessionStore:
    def __init__(self, session_factory: sessionmaker[Session], clock: Clock) -> None:
        self.session_factory = session_factory
        self.clock = clock

    def create(
        self, user_id: uuid.UUID | None = None, auth_method: str | None = None
    ) -> SessionData:
        now = self.clock.now()
        token = secrets.token_urlsafe(32)
        row = PortalSession(
            id_hash=hash_secret(token),
            user_id=user_id,
            csrf_token=secrets.token_urlsafe(32),
            auth_method=auth_method,
            created_at=now,
            last_seen_at=now,
            expires_at=now + (ABSOLUTE_TIMEOUT if user_id else IDLE_TIMEOUT),
        )
        with transaction(self.session_factory) as session:
            session.add(row)
        return SessionData(token, user_id, row.csrf_token, auth_method, row.expires_at)

    def load(self, token: str | None) -> SessionData | None:
        """The live session of this cookie value, or None (unknown, idle or expired)."""
        if not token or len(token) > 128:
            return None
        now = self.clock.now()
        with transaction(self.session_factory) as session:
            row = session.get(PortalSession, hash_secret(token))
            if row is None:
                return None
            if utc(row.expires_at) <= now or utc(row.last_seen_at) + IDLE_TIMEOUT <= now:
                session.delete(row)
                return None
            if now - utc(row.last_seen_at) >= TOUCH_EVERY:
                row.last_seen_at = now
            return SessionData(
                token, row.user_id, row.csrf_token, row.auth_method, utc(row.expires_at)
            )

    def sign_in(self, previous: SessionData | None, user_id: uuid.UUID, method: str) -> SessionData:
        """Replaces the visitor's session by a new one bound to ``user_id``."""
        if previous is not None:
            self.destroy(previous.token)
        return self.create(user_id, method)

    def destroy(self, token: str) -> None:
        with transaction(self.session_factory) as session:
            session.execute(
                delete(PortalSession).where(PortalSession.id_hash == hash_secret(token))
            )


def purge_expired(session: Session, now: dt.datetime) -> int:
    """Delete the sessions that ended (twelve hours) or went idle (two hours) by ``now``; the
    scheduled work runs it (``guichet.application.scheduler.tick``). Returns how many."""
    stale = session.scalars(
        select(PortalSession.id_hash).where(
            (PortalSession.expires_at <= now) | (PortalSession.last_seen_at <= now - IDLE_TIMEOUT)
        )
    ).all()
    if stale:
        session.execute(delete(PortalSession).where(PortalSession.id_hash.in_(stale)))
    return len(stale)

"""Server-side portal sessions: a random id in the cookie, its SHA-256 in the database.

Every session (signed in or not) carries a CSRF synchronizer token. Signing in, or out,
replaces the session with a new id and a new CSRF token (no session fixation). Between a
right password and the second factor (``guichet.accounts.second_factor``) the session is
*pending*: it names the person (``pending_user_id``) but is not signed in (``user_id`` is
None), for ten minutes at most; every page that needs a signed-in person refuses it.
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
# From the right password to the second factor (or its enrolment).
PENDING_TIMEOUT = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class SessionData:
    """A live session as a request sees it; ``token`` is what the cookie holds."""

    token: str
    user_id: uuid.UUID | None
    csrf_token: str
    auth_method: str | None
    expires_at: dt.datetime
    # The person whose password was right and who has not given the second factor yet.
    pending_user_id: uuid.UUID | None = None
    # Where the pending sign-in leads once the second factor is given (a local path).
    return_to: str | None = None

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
        self,
        user_id: uuid.UUID | None = None,
        auth_method: str | None = None,
        *,
        pending_user_id: uuid.UUID | None = None,
        return_to: str | None = None,
    ) -> SessionData:
        now = self.clock.now()
        token = secrets.token_urlsafe(32)
        if pending_user_id is not None:
            lifetime = PENDING_TIMEOUT
        else:
            lifetime = ABSOLUTE_TIMEOUT if user_id else IDLE_TIMEOUT
        row = PortalSession(
            id_hash=hash_secret(token),
            user_id=user_id,
            pending_user_id=pending_user_id,
            return_to=return_to,
            csrf_token=secrets.token_urlsafe(32),
            auth_method=auth_method,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
        )
        with transaction(self.session_factory) as session:
            session.add(row)
        return SessionData(
            token, user_id, row.csrf_token, auth_method, row.expires_at, pending_user_id, return_to
        )

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
                token,
                row.user_id,
                row.csrf_token,
                row.auth_method,
                utc(row.expires_at),
                row.pending_user_id,
                row.return_to,
            )

    def sign_in(self, previous: SessionData | None, user_id: uuid.UUID, method: str) -> SessionData:
        """Replaces the visitor's session by a new one bound to ``user_id``."""
        if previous is not None:
            self.destroy(previous.token)
        return self.create(user_id, method)

    def await_second_factor(
        self,
        previous: SessionData | None,
        user_id: uuid.UUID,
        method: str,
        return_to: str | None = None,
    ) -> SessionData:
        """Replaces the visitor's session by a pending one: the password of ``user_id`` was
        right, the second factor is still to come (``sign_in`` once it is, then
        ``return_to``, a local path the caller checked)."""
        if previous is not None:
            self.destroy(previous.token)
        return self.create(None, method, pending_user_id=user_id, return_to=return_to)

    def set_challenge(self, token: str, challenge: str) -> None:
        """Keeps the WebAuthn challenge of the options just shown (the last one wins)."""
        with transaction(self.session_factory) as session:
            row = session.get(PortalSession, hash_secret(token))
            if row is not None:
                row.challenge = challenge

    def take_challenge(self, token: str) -> str | None:
        """The session's WebAuthn challenge, forgotten as it is read: an answer to it is
        verified once."""
        with transaction(self.session_factory) as session:
            row = session.get(PortalSession, hash_secret(token))
            if row is None or row.challenge is None:
                return None
            challenge, row.challenge = row.challenge, None
            return challenge

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

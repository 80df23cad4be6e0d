"""Single-use, expiring tokens sent by mail (email verification, password reset).

The mail carries 256 random bits; the database holds their SHA-256 only, so a read of the
table yields no usable link. A token is found by its hash (an index lookup, never a
character-by-character comparison of the secret).
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from guichet.accounts.errors import AccountTokenInvalid
from guichet.accounts.models import AccountToken, TokenPurpose
from guichet.clock import utc
from guichet.secrets import hash_secret, new_secret

LIFETIMES = {
    TokenPurpose.VERIFY_EMAIL: dt.timedelta(hours=48),
    TokenPurpose.RESET_PASSWORD: dt.timedelta(hours=1),
}


def issue_token(
    session: Session,
    user_id: uuid.UUID,
    purpose: TokenPurpose,
    now: dt.datetime,
    lifetime: dt.timedelta | None = None,
) -> str:
    """A new token for ``user_id``; returns the secret (to put in a link), stores its hash."""
    secret = new_secret()
    session.add(
        AccountToken(
            user_id=user_id,
            purpose=purpose,
            token_hash=hash_secret(secret),
            created_at=now,
            expires_at=now + (lifetime or LIFETIMES[purpose]),
        )
    )
    session.flush()
    return secret


def consume_token(
    session: Session, secret: str, purpose: TokenPurpose, now: dt.datetime
) -> uuid.UUID:
    """Marks the token used and returns its user; refuses unknown, used or expired tokens.

    The conditional update makes two concurrent uses of one token produce one success.
    """
    if not secret or len(secret) > 128:
        raise AccountTokenInvalid()
    digest = hash_secret(secret)
    token = session.scalar(
        select(AccountToken).where(
            AccountToken.token_hash == digest, AccountToken.purpose == purpose
        )
    )
    if token is None or token.used_at is not None or utc(token.expires_at) <= now:
        raise AccountTokenInvalid()
    claimed = session.execute(
        update(AccountToken)
        .where(AccountToken.id == token.id, AccountToken.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise AccountTokenInvalid()
    return token.user_id


def revoke_tokens(
    session: Session, user_id: uuid.UUID, purpose: TokenPurpose, now: dt.datetime
) -> None:
    """Uses up every outstanding token of that purpose (e.g. after a password change)."""
    session.execute(
        update(AccountToken)
        .where(
            AccountToken.user_id == user_id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=now)
    )


def recent_token(
    session: Session, user_id: uuid.UUID, purpose: TokenPurpose, since: dt.datetime
) -> bool:
    """Whether an unused token of that purpose was issued after ``since`` (anti-flooding)."""
    found = session.scalar(
        select(AccountToken.id).where(
            AccountToken.user_id == user_id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
            AccountToken.created_at > since,
        )
    )
    return found is not None

"""Single-use, expiring tokens sent by mail (email verification, password reset, and the
rows that carry one: invitations to an organisation, confirmations of a contact's address).

The mail carries 256 random bits; the database holds their SHA-256 only, so a read of the
table yields no usable link. A token is found by its hash (an index lookup, never a
character-by-character comparison of the secret).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from guichet.accounts.errors import AccountTokenInvalid
from guichet.accounts.models import AccountToken, SingleUseToken, TokenPurpose
from guichet.clock import utc
from guichet.secrets import hash_secret, new_secret

LIFETIMES = {
    TokenPurpose.VERIFY_EMAIL: dt.timedelta(hours=48),
    TokenPurpose.RESET_PASSWORD: dt.timedelta(hours=1),
}
MAX_SECRET = 128

T = TypeVar("T", bound=SingleUseToken)


def token_columns(now: dt.datetime, lifetime: dt.timedelta) -> tuple[str, dict[str, Any]]:
    """A new secret (for the link) and the columns of its row (its hash, its dates)."""
    secret = new_secret()
    return secret, {
        "token_hash": hash_secret(secret),
        "created_at": now,
        "expires_at": now + lifetime,
        "used_at": None,
    }


def find_live(
    session: Session,
    model: type[T],
    secret: str,
    now: dt.datetime,
    *where: ColumnElement[bool],
) -> T | None:
    """The row of an unused, unexpired secret (by its hash), or None."""
    if not secret or len(secret) > MAX_SECRET:
        return None
    row = session.scalar(select(model).where(model.token_hash == hash_secret(secret), *where))
    if row is None or row.used_at is not None or utc(row.expires_at) <= now:
        return None
    return row


def spend(session: Session, row: SingleUseToken, now: dt.datetime) -> None:
    """Marks the row used; the conditional update makes two concurrent uses of one secret
    produce one success (the other raises ``AccountTokenInvalid``)."""
    model = type(row)
    claimed = session.execute(
        update(model)
        .where(model.token_hash == row.token_hash, model.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise AccountTokenInvalid()
    set_committed_value(row, "used_at", now)


def issue_token(
    session: Session,
    user_id: uuid.UUID,
    purpose: TokenPurpose,
    now: dt.datetime,
    lifetime: dt.timedelta | None = None,
) -> str:
    """A new token for ``user_id``; returns the secret (to put in a link), stores its hash."""
    secret, columns = token_columns(now, lifetime or LIFETIMES[purpose])
    session.add(AccountToken(user_id=user_id, purpose=purpose, **columns))
    session.flush()
    return secret


def consume_token(
    session: Session, secret: str, purpose: TokenPurpose, now: dt.datetime
) -> uuid.UUID:
    """Marks the token used and returns its user; refuses unknown, used or expired tokens.

    The conditional update makes two concurrent uses of one token produce one success.
    """
    token = find_live(session, AccountToken, secret, now, AccountToken.purpose == purpose)
    if token is None:
        raise AccountTokenInvalid()
    spend(session, token, now)
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

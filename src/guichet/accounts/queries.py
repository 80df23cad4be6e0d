"""Read functions over accounts for the pages that show them."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from guichet.accounts.models import User


def display_names(session: Session, user_ids: Collection[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """Each person's display name, by user id (``None`` ids are ignored)."""
    wanted = {i for i in user_ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {row.id: row.display_name for row in rows}

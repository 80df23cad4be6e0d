"""Cross-cutting tables: the cache generation that tells workers their policy snapshot is stale."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from guichet.db.base import Base


class CacheGeneration(Base):
    """One row; bumped in the same transaction as any change the gateway's hot path reads."""

    __tablename__ = "cache_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


def bump_generation(session: Session) -> None:
    """Call inside the transaction that changes anything a snapshot holds."""
    updated = session.execute(
        update(CacheGeneration)
        .where(CacheGeneration.id == 1)
        .values(value=CacheGeneration.value + 1)
    )
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        session.add(CacheGeneration(id=1, value=1))


def read_generation(session: Session) -> int:
    value = session.scalar(select(CacheGeneration.value).where(CacheGeneration.id == 1))
    return int(value or 0)

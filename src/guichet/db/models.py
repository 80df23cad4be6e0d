"""Cross-cutting tables: the cache generation that tells workers their policy snapshot is stale."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer
from sqlalchemy.orm import Mapped, mapped_column

from guichet.db.base import Base


class CacheGeneration(Base):
    """One row; bumped in the same transaction as any change the gateway's hot path reads."""

    __tablename__ = "cache_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)

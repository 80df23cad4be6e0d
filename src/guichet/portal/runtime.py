"""What the portal needs of the process it runs in (``guichet.runtime.Runtime`` has it)."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from guichet.clock import Clock
from guichet.secrets import MasterSecret
from guichet.settings import Settings


class PortalRuntime(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def session_factory(self) -> sessionmaker[Session]: ...

    @property
    def master(self) -> MasterSecret: ...

    @property
    def clock(self) -> Clock: ...

"""The embedded default's instructor account, so that ``guichet run`` can be tried at once."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from guichet.accounts.models import ProviderRole, User
from guichet.accounts.passwords import Passwords
from guichet.accounts.service import create_user, email_key, grant_provider_role
from guichet.clock import Clock
from guichet.db import transaction
from guichet.settings import Settings

INSTRUCTOR_EMAIL = "instructeur@guichet.example"
INSTRUCTOR_NAME = "Instructrice de démonstration"


class SeedRuntime(Protocol):
    """What seeding needs of a runtime (``guichet.runtime.Runtime`` has it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def session_factory(self) -> sessionmaker[Session]: ...

    @property
    def clock(self) -> Clock: ...


def instructor_file(runtime: SeedRuntime) -> Path:
    return runtime.settings.data_dir / "demo" / "instructor.txt"


def ensure_instructor(
    runtime: SeedRuntime, passwords: Passwords | None = None
) -> tuple[str, str | None]:
    """The demo instructor's email, and its new password if this call created the account.

    The password is also written to ``DATA_DIR/demo/instructor.txt`` (mode 0600), never to
    the logs; an existing account is left as it is (None).
    """
    now = runtime.clock.now()
    with transaction(runtime.session_factory) as session:
        user = session.scalar(
            select(User)
            .where(User.email_key == email_key(INSTRUCTOR_EMAIL))
            .options(selectinload(User.provider_roles))
        )
        if user is not None:
            grant_provider_role(session, user, ProviderRole.INSTRUCTOR, now)
            return INSTRUCTOR_EMAIL, None
        password = secrets.token_urlsafe(12)
        hashed = (passwords or Passwords()).hash(password)
        user = create_user(
            session, INSTRUCTOR_EMAIL, INSTRUCTOR_NAME, now, password_hash=hashed, verified=True
        )
        grant_provider_role(session, user, ProviderRole.INSTRUCTOR, now)
        path = instructor_file(runtime)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"adresse : {INSTRUCTOR_EMAIL}\nmot de passe : {password}\n")
    return INSTRUCTOR_EMAIL, password

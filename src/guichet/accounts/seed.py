"""The embedded default's instructor account, so that ``guichet run`` can be tried at once.

Staff sign in with a second factor (issue 14, C4): the demo instructor is enrolled with a
TOTP application whose seed is written next to its password, in ``DATA_DIR/demo/
instructor.txt`` (0600), as the ``otpauth://`` URI an application scans or the key typed by
hand. Only this demo account of the embedded default is enrolled so; production staff enrol
their own factor at their first sign-in, and there is no setting to switch the rule off.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from guichet.accounts.models import ProviderRole, SecondFactor, User
from guichet.accounts.passwords import Passwords
from guichet.accounts.second_factor import ISSUER, add_totp_factor, new_totp_secret, totp_uri
from guichet.accounts.service import create_user, email_key, grant_provider_role
from guichet.clock import Clock
from guichet.db import transaction
from guichet.secrets import MasterSecret
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

    @property
    def master(self) -> MasterSecret: ...


def instructor_file(runtime: SeedRuntime) -> Path:
    return runtime.settings.data_dir / "demo" / "instructor.txt"


def ensure_instructor(
    runtime: SeedRuntime, passwords: Passwords | None = None
) -> tuple[str, str | None]:
    """The demo instructor's email, and its new password if this call created the account.

    The password is also written to ``DATA_DIR/demo/instructor.txt`` (mode 0600), never to
    the logs, with the seed of its TOTP second factor; an existing account is left as it is
    (None), except that one made before the second factor is enrolled and its seed appended
    to the file.
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
            if not session.scalar(select(SecondFactor.id).where(SecondFactor.user_id == user.id)):
                seed = new_totp_secret()
                add_totp_factor(session, runtime.master, user.id, seed, now)
                path = instructor_file(runtime)
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as f:
                    f.write(_second_factor_lines(seed))
            return INSTRUCTOR_EMAIL, None
        password = secrets.token_urlsafe(12)
        hashed = (passwords or Passwords()).hash(password)
        user = create_user(
            session, INSTRUCTOR_EMAIL, INSTRUCTOR_NAME, now, password_hash=hashed, verified=True
        )
        grant_provider_role(session, user, ProviderRole.INSTRUCTOR, now)
        seed = new_totp_secret()
        add_totp_factor(session, runtime.master, user.id, seed, now)
        path = instructor_file(runtime)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"adresse : {INSTRUCTOR_EMAIL}\nmot de passe : {password}\n")
            f.write(_second_factor_lines(seed))
    return INSTRUCTOR_EMAIL, password


def _second_factor_lines(seed: str) -> str:
    return (
        f"second facteur (TOTP) : {seed}\n"
        f"second facteur (URI) : {totp_uri(seed, INSTRUCTOR_EMAIL, ISSUER)}\n"
    )

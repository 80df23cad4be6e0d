"""Staff accounts can be disabled, enabled and removed (issue 12 §2): a disabled account
cannot sign in nor reset its password and loses its sessions; removal deletes an account
nothing refers to and keeps, disabled, one the history or a partner refers to."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from guichet.accounts import staff
from guichet.accounts.errors import SignInFailed
from guichet.accounts.models import (
    Membership,
    PartnerRole,
    PortalSession,
    ProviderRole,
    ProviderRoleGrant,
    User,
)
from guichet.accounts.passwords import Passwords
from guichet.accounts.service import AccountService, create_user, grant_provider_role
from guichet.accounts.sessions import SessionStore
from guichet.clock import FrozenClock
from guichet.commands.accounts import app as user_app
from guichet.db import transaction
from guichet.habilitation.service import get_or_create_organisation
from guichet.mail.outbox import Outbox
from guichet.settings import Settings, use_settings
from tests.unit.accounts.conftest import FAST_HASHER, PASSWORD, SIRET

AGENT = "agent@dgfip.test"
ADMIN = "admin@dgfip.test"


def _staff(
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    email: str = AGENT,
    role: ProviderRole = ProviderRole.INSTRUCTOR,
) -> uuid.UUID:
    with transaction(session_factory) as session:
        user = create_user(
            session,
            email,
            email.split("@")[0],
            clock.now(),
            password_hash=Passwords(FAST_HASHER).hash(PASSWORD),
            verified=True,
        )
        grant_provider_role(session, user, role, clock.now())
        return user.id


def _change(
    session_factory: sessionmaker[Session], clock: FrozenClock, user_id: uuid.UUID, change: str
) -> object:
    with transaction(session_factory) as session:
        user = session.get_one(User, user_id)
        if change == "remove":
            return staff.remove(session, user, clock.now(), "tests")
        return getattr(staff, change)(session, user, clock.now(), "tests")


def test_a_disabled_account_cannot_sign_in_and_loses_its_sessions(
    service: AccountService,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    outbox: Outbox,
) -> None:
    user_id = _staff(session_factory, clock)
    assert service.sign_in(AGENT, PASSWORD).user_id == user_id
    sessions = SessionStore(session_factory, clock)
    live = sessions.create(user_id, "password")
    assert _change(session_factory, clock, user_id, "disable") is True
    assert _change(session_factory, clock, user_id, "disable") is False  # already
    assert sessions.load(live.token) is None
    with pytest.raises(SignInFailed):
        service.sign_in(AGENT, PASSWORD)  # the same message as a wrong password
    mails = len(outbox.list())
    service.request_password_reset(AGENT)
    assert len(outbox.list()) == mails  # no reset link for a disabled account
    assert _change(session_factory, clock, user_id, "enable") is True
    assert service.sign_in(AGENT, PASSWORD).user_id == user_id


def test_removal_deletes_an_account_nothing_refers_to(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    user_id = _staff(session_factory, clock)
    SessionStore(session_factory, clock).create(user_id, "password")
    assert _change(session_factory, clock, user_id, "remove") is staff.Removal.DELETED
    with session_factory() as session:
        assert session.get(User, user_id) is None
        assert not session.scalar(select(func.count()).where(ProviderRoleGrant.user_id == user_id))
        assert not session.scalar(select(func.count()).where(PortalSession.user_id == user_id))


def test_removal_keeps_disabled_an_account_a_partner_refers_to(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    user_id = _staff(session_factory, clock)
    with transaction(session_factory) as session:
        org = get_or_create_organisation(session, SIRET, "Commune d'Exemple", clock.now())
        session.add(
            Membership(
                user_id=user_id,
                organisation_id=org.id,
                role=PartnerRole.APPLICANT,
                created_at=clock.now(),
            )
        )
    assert _change(session_factory, clock, user_id, "remove") is staff.Removal.DISABLED
    with session_factory() as session:
        user = session.get_one(User, user_id)
        assert user.disabled_at is not None
        assert user.password_hash is None
        assert user.provider_roles == []


def test_the_portal_refuses_self_removal_and_the_last_administrator(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    admin = _staff(session_factory, clock, ADMIN, ProviderRole.ADMINISTRATOR)
    other = _staff(session_factory, clock, "admin2@dgfip.test", ProviderRole.ADMINISTRATOR)
    with transaction(session_factory) as session:
        target = session.get_one(User, admin)
        with pytest.raises(staff.StaffChangeRefused, match="votre propre compte"):
            staff.check_change(session, admin, target, "disable")
        staff.check_change(session, other, target, "disable")  # another administrator may
        staff.check_change(session, admin, target, "enable")
        staff.disable(session, session.get_one(User, other), clock.now(), "tests")
        with pytest.raises(staff.StaffChangeRefused, match="dernier compte administrateur"):
            staff.check_change(session, other, target, "remove")


def test_the_command_line_disables_enables_and_removes(tmp_path: Path) -> None:
    agent = "agent@dgfip.gouv.fr"
    use_settings(Settings(data_dir=tmp_path / "data", secret_key="k" * 48))
    try:
        runner = CliRunner()
        added = runner.invoke(user_app, ["add", "--email", agent, "--role", "operator"])
        assert added.exit_code == 0, added.output
        result = runner.invoke(user_app, ["disable", agent])
        assert result.exit_code == 0, result.output
        assert "désactivé" in result.output
        listed = runner.invoke(user_app, ["list"])
        assert "désactivé" in listed.output
        again = runner.invoke(user_app, ["disable", agent])
        assert "rien à faire" in again.output
        assert runner.invoke(user_app, ["enable", agent]).exit_code == 0
        removed = runner.invoke(user_app, ["remove", agent])
        assert removed.exit_code == 0, removed.output
        assert "supprimé" in removed.output
        unknown = runner.invoke(user_app, ["disable", agent])
        assert unknown.exit_code == 2
        assert "Aucun compte" in unknown.output
    finally:
        use_settings(None)

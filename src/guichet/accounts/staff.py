"""Disabling, enabling and removing the provider's staff accounts (issue 12): from the command
line (``guichet user disable|enable|remove``) and the portal's "Agents" page.

A disabled account cannot sign in (by password or identity provider), its portal sessions
are ended and its password links revoked; enabling it gives it back its access, with a new
password to choose. Removing a staff account withdraws its provider roles and deletes it
when nothing else refers to it; an account that acted on a request (the history keeps its
name) or belongs to a partner organisation is disabled and stripped of its password instead.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from guichet.accounts.errors import FormInvalid
from guichet.accounts.models import AccountToken, Membership, PortalSession, ProviderRole, User
from guichet.accounts.service import email_key
from guichet.db.base import Base
from guichet.errors import Forbidden
from guichet.habilitation import request_models as _history  # noqa: F401 - refers to accounts
from guichet.logs import event

log = logging.getLogger(__name__)

USER_TABLE = "user_account"


class Removal(StrEnum):
    DELETED = "deleted"  # the account no longer exists
    DISABLED = "disabled"  # kept, disabled, for the history or the partner that refer to it


class StaffChangeRefused(Forbidden):
    """An administrator may not lock themselves out, nor leave the portal without one."""

    code = "staff_change_refused"
    title = "Cette modification de compte n'est pas permise."


@dataclass(frozen=True, slots=True)
class StaffAccount:
    id: uuid.UUID
    email: str
    display_name: str
    roles: tuple[ProviderRole, ...]
    disabled_at: dt.datetime | None
    last_sign_in_at: dt.datetime | None


def staff_accounts(session: Session) -> list[StaffAccount]:
    """Every account holding a provider role, by address."""
    users = session.scalars(
        select(User)
        .where(User.provider_roles.any())
        .options(selectinload(User.provider_roles))
        .order_by(User.email_key)
    ).all()
    return [
        StaffAccount(
            u.id,
            u.email,
            u.display_name,
            tuple(sorted((g.role for g in u.provider_roles), key=list(ProviderRole).index)),
            u.disabled_at,
            u.last_sign_in_at,
        )
        for u in users
    ]


def find_user(session: Session, ident: str) -> User:
    """An account by its address or its id; ``FormInvalid`` when there is none."""
    user: User | None = None
    try:
        user = session.get(User, uuid.UUID(ident))
    except ValueError:
        user = session.scalar(select(User).where(User.email_key == email_key(ident)[:320]))
    if user is None:
        raise FormInvalid({"email": f"Aucun compte « {ident} »."})
    return user


def _end_access(session: Session, user: User, now: dt.datetime) -> None:
    """Sessions ended (a second factor pending included), password links spent."""
    session.execute(
        delete(PortalSession).where(
            (PortalSession.user_id == user.id) | (PortalSession.pending_user_id == user.id)
        )
    )
    session.execute(
        update(AccountToken)
        .where(AccountToken.user_id == user.id, AccountToken.used_at.is_(None))
        .values(used_at=now)
    )


def disable(session: Session, user: User, now: dt.datetime, actor: str) -> bool:
    """Disable ``user``; False when it already was."""
    if user.disabled_at is not None:
        return False
    user.disabled_at = now
    user.updated_at = now
    _end_access(session, user, now)
    event(log, "accounts.disabled", user=user.id, actor=actor)
    return True


def enable(session: Session, user: User, now: dt.datetime, actor: str) -> bool:
    """Enable ``user`` again; False when it was not disabled."""
    if user.disabled_at is None:
        return False
    user.disabled_at = None
    user.failed_sign_ins = 0
    user.locked_until = None
    user.updated_at = now
    event(log, "accounts.enabled", user=user.id, actor=actor)
    return True


def _references(table: Table) -> list[str]:
    """The columns of ``table`` that refer to an account."""
    return [
        column.name
        for column in table.c
        for fk in column.foreign_keys
        if fk.column.table.name == USER_TABLE
    ]


def _owned_tables() -> set[str]:
    """Tables of the accounts domain itself: sessions, tokens, identities, factors…"""
    return {
        table.name
        for mapper in Base.registry.mappers
        if mapper.class_.__module__ == User.__module__
        and isinstance(table := mapper.local_table, Table)
    }


def remove(session: Session, user: User, now: dt.datetime, actor: str) -> Removal:
    """Withdraw the staff roles of ``user`` and delete the account if nothing else refers to
    it; otherwise disable it (password removed) and keep it for the history."""
    user.provider_roles.clear()
    owned = _owned_tables()
    history = 0
    for table in Base.metadata.sorted_tables:
        if table.name in owned or table.name == USER_TABLE:
            continue
        for name in _references(table):
            history += (
                session.scalar(
                    select(func.count()).select_from(table).where(table.c[name] == user.id)
                )
                or 0
            )
    member = session.scalar(select(func.count()).where(Membership.user_id == user.id)) or 0
    if history or member:
        disable(session, user, now, actor)
        user.password_hash = None
        event(log, "accounts.staff_removed", user=user.id, actor=actor, kept="history")
        return Removal.DISABLED
    _end_access(session, user, now)
    session.flush()
    user_id = user.id
    try:
        with session.begin_nested():
            for table in reversed(Base.metadata.sorted_tables):
                if table.name not in owned or table.name == USER_TABLE:
                    continue
                for name in _references(table):
                    column = table.c[name]
                    if column.nullable and name != "user_id":
                        session.execute(update(table).where(column == user_id).values({name: None}))
                    else:
                        session.execute(delete(table).where(column == user_id))
            session.execute(delete(User).where(User.id == user_id))
    except IntegrityError:
        # Referred to by a table this process does not know of: kept, disabled.
        session.refresh(user)
        disable(session, user, now, actor)
        user.password_hash = None
        event(log, "accounts.staff_removed", user=user_id, actor=actor, kept="history")
        return Removal.DISABLED
    session.expunge(user)
    event(log, "accounts.staff_removed", user=user_id, actor=actor, kept="none")
    return Removal.DELETED


def active_administrators(session: Session) -> int:
    """Enabled accounts holding the administrator role (the last one is never removed)."""
    return len(
        [
            a
            for a in staff_accounts(session)
            if a.disabled_at is None and ProviderRole.ADMINISTRATOR in a.roles
        ]
    )


def check_change(session: Session, actor_id: uuid.UUID, user: User, change: str) -> None:
    """Refuse, on the portal, disabling or removing one's own account or the last enabled
    administrator (the command line, run by whoever holds the database, may)."""
    if change not in ("disable", "remove"):
        return
    if user.id == actor_id:
        raise StaffChangeRefused("Vous ne pouvez pas désactiver ni retirer votre propre compte.")
    is_admin = any(g.role is ProviderRole.ADMINISTRATOR for g in user.provider_roles)
    if is_admin and user.disabled_at is None and active_administrators(session) <= 1:
        raise StaffChangeRefused("C'est le dernier compte administrateur actif du portail.")

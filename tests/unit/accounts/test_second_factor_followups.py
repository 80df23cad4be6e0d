"""The second factor's follow-ups (issue 14, C4): joining an organisation that holds a FICOBA
habilitation ends the sessions opened without a second factor; the lock-out after five
refused factors is told to the account holder by mail, without any secret; staff keys must
verify their holder (WebAuthn UV "required"), partner members' keys need presence only; an
administrator's reset is logged with its actor and leaves a clean account."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.errors import SecondFactorInvalid
from guichet.accounts.models import (
    Membership,
    PartnerRole,
    PortalSession,
    ProviderRole,
    RecoveryCode,
    SecondFactor,
    User,
)
from guichet.accounts.organisations import OrganisationService
from guichet.accounts.passwords import Passwords
from guichet.accounts.second_factor import (
    SecondFactors,
    end_sessions_without_second_factor,
    enforce_for_organisation,
    reset_second_factors,
    totp_code,
    totp_step,
)
from guichet.accounts.service import AccountService, create_user, grant_provider_role
from guichet.accounts.sessions import SessionStore
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.habilitation.models import Environment, Habilitation, HabilitationStatus
from guichet.habilitation.service import get_or_create_organisation
from guichet.mail.outbox import Outbox, OutboxMailer
from guichet.secrets import MasterSecret
from tests.support.second_factor import TOTP_SECRET, SoftwareAuthenticator, enrol_totp
from tests.unit.accounts.conftest import FAST_HASHER, SIRET, link_token

PORTAL = "https://portail.guichet.test"
OTHER_SIRET = "21000000610001"


def _habilitation(organisation_id: uuid.UUID, apis: list[str], now: dt.datetime) -> Habilitation:
    return Habilitation(
        organisation_id=organisation_id,
        environment=Environment.SANDBOX,
        demarche="Recherche de comptes",
        status=HabilitationStatus.ACTIVE,
        apis=apis,
        access_modes=[],
        data_scopes=[],
        year_scopes=[],
        ip_ranges=[],
        quotas={},
        valid_from=now,
        created_at=now,
        updated_at=now,
    )


@pytest.fixture
def factors(
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    master_secret: MasterSecret,
    outbox: Outbox,
) -> SecondFactors:
    mailer = OutboxMailer(outbox.directory, "guichet <ne-pas-repondre@guichet.example>", clock)
    return SecondFactors(
        session_factory, clock, master_secret, PORTAL, Passwords(FAST_HASHER), mailer
    )


@pytest.fixture
def staff(session_factory: sessionmaker[Session], clock: FrozenClock) -> uuid.UUID:
    with transaction(session_factory) as session:
        user = create_user(session, "agent@dgfip.test", "Agent Martin", clock.now(), verified=True)
        grant_provider_role(session, user, ProviderRole.INSTRUCTOR, clock.now())
        return user.id


@pytest.fixture
def partner(session_factory: sessionmaker[Session], clock: FrozenClock) -> uuid.UUID:
    """A member of an organisation holding a FICOBA habilitation."""
    now = clock.now()
    with transaction(session_factory) as session:
        bank = get_or_create_organisation(session, SIRET, "Banque d'exemple", now)
        user = create_user(session, "membre@banque.test", "Membre", now, verified=True)
        session.add(
            Membership(
                user_id=user.id, organisation_id=bank.id, role=PartnerRole.APPLICANT, created_at=now
            )
        )
        session.add(_habilitation(bank.id, ["ficoba"], now))
        return user.id


def _sessions_of(session_factory: sessionmaker[Session], user_id: uuid.UUID) -> list[str | None]:
    with session_factory() as session:
        return sorted(
            (
                row.auth_method
                for row in session.scalars(
                    select(PortalSession).where(PortalSession.user_id == user_id)
                )
            ),
            key=str,
        )


def test_only_sessions_without_a_second_factor_end(
    session_factory: sessionmaker[Session], clock: FrozenClock, staff: uuid.UUID
) -> None:
    store = SessionStore(session_factory, clock)
    store.create(staff, "password")
    store.create(staff, "password+totp")
    store.create(staff, "password+webauthn")
    pending = store.await_second_factor(None, staff, "password")
    with transaction(session_factory) as session:
        assert end_sessions_without_second_factor(session, [staff]) == 1
        assert end_sessions_without_second_factor(session, []) == 0
    assert _sessions_of(session_factory, staff) == ["password+totp", "password+webauthn"]
    # The pending session leads to the second factor anyway: it stays.
    live = store.load(pending.token)
    assert live is not None
    assert live.pending_user_id == staff


def test_an_organisation_without_ficoba_keeps_its_members_sessions(
    session_factory: sessionmaker[Session], clock: FrozenClock
) -> None:
    now = clock.now()
    store = SessionStore(session_factory, clock)
    with transaction(session_factory) as session:
        town = get_or_create_organisation(session, OTHER_SIRET, "Ville", now)
        user = create_user(session, "agent@ville-exemple.fr", "Agent", now, verified=True)
        session.add(
            Membership(
                user_id=user.id, organisation_id=town.id, role=PartnerRole.APPLICANT, created_at=now
            )
        )
        session.add(_habilitation(town.id, ["impot_particulier"], now))
        town_id, user_id = town.id, user.id
    store.create(user_id, "password")
    with transaction(session_factory) as session:
        assert enforce_for_organisation(session, town_id) == 0
    assert _sessions_of(session_factory, user_id) == ["password"]
    with transaction(session_factory) as session:
        session.add(_habilitation(town_id, ["ficoba"], now))
        session.flush()
        assert enforce_for_organisation(session, town_id) == 1
    assert _sessions_of(session_factory, user_id) == []


def test_joining_a_ficoba_organisation_ends_the_session_without_second_factor(
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    service: AccountService,
    outbox: Outbox,
    partner: uuid.UUID,
) -> None:
    """Signed in with a password only (no rule applied to them), a person takes an
    invitation of a FICOBA organisation: that session ends, they sign in again and enrol."""
    now = clock.now()
    with transaction(session_factory) as session:
        town = get_or_create_organisation(session, OTHER_SIRET, "Ville", now)
        joiner = create_user(session, "agent@ville-exemple.fr", "Agent", now, verified=True)
        session.add(
            Membership(
                user_id=joiner.id,
                organisation_id=town.id,
                role=PartnerRole.APPLICANT,
                created_at=now,
            )
        )
        bank_id = session.scalars(
            select(Membership.organisation_id).where(Membership.user_id == partner)
        ).one()
        joiner_id = joiner.id
    store = SessionStore(session_factory, clock)
    store.create(joiner_id, "password")
    store.create(partner, "password+totp")
    orgs = OrganisationService(service)
    orgs.invite(partner, bank_id, "agent@ville-exemple.fr", "technical_contact")
    assert orgs.accept_as(link_token(outbox, "/invitation"), joiner_id) == bank_id
    assert _sessions_of(session_factory, joiner_id) == []
    assert _sessions_of(session_factory, partner) == ["password+totp"]


def test_the_lock_out_is_mailed_to_the_holder_without_any_secret(
    factors: SecondFactors,
    staff: uuid.UUID,
    session_factory: sessionmaker[Session],
    master_secret: MasterSecret,
    clock: FrozenClock,
    outbox: Outbox,
) -> None:
    with transaction(session_factory) as session:
        enrol_totp(session, master_secret, staff, clock.now())
    codes = factors.new_recovery_codes(staff)
    good = totp_code(TOTP_SECRET, totp_step(clock.now()))
    wrong = "000000" if good != "000000" else "111111"
    for _ in range(4):
        with pytest.raises(SecondFactorInvalid):
            factors.verify_totp(staff, wrong)
    assert outbox.list() == []  # no mail before the lock-out
    with pytest.raises(SecondFactorInvalid) as refused:
        factors.verify_totp(staff, wrong)
    assert "bloqué" in refused.value.detail
    [entry] = outbox.list()
    assert entry.to == "agent@dgfip.test"
    assert entry.subject == "Votre compte est bloqué après des seconds facteurs refusés"
    mail = outbox.get(entry.id)
    assert mail is not None
    assert "Bonjour Agent Martin" in mail.text
    assert "cinq seconds facteurs refusés" in mail.text
    assert "(heure de Paris)" in mail.text
    assert f"{PORTAL}/mot-de-passe/oubli" in mail.text
    # No seed, no code, no recovery code, no link that signs in.
    for secret in [TOTP_SECRET, good, wrong, *codes, *(c.replace("-", "") for c in codes)]:
        assert secret not in mail.text
    assert "token=" not in mail.text
    # Refused while locked: no second mail.
    with pytest.raises(SecondFactorInvalid):
        factors.verify_totp(staff, good)
    assert len(outbox.list()) == 1


def test_staff_keys_must_verify_their_holder(
    factors: SecondFactors, staff: uuid.UUID, partner: uuid.UUID
) -> None:
    """UV "required" for staff: in the options, at registration and at every sign-in; a
    partner member's key without a PIN is accepted (UV "preferred"), presence always."""
    options_json, challenge = factors.registration_options(staff)
    options = json.loads(options_json)
    assert options["authenticatorSelection"]["userVerification"] == "required"
    plain = SoftwareAuthenticator(PORTAL, user_verified=False)
    with pytest.raises(SecondFactorInvalid):
        factors.register_key(staff, plain.create(options), challenge)

    verifying = SoftwareAuthenticator(PORTAL)
    options_json, challenge = factors.registration_options(staff)
    factors.register_key(staff, verifying.create(json.loads(options_json)), challenge)
    found = factors.authentication_options(staff)
    assert found is not None
    assert json.loads(found[0])["userVerification"] == "required"
    # The same key answering without verifying its holder (its PIN skipped): refused.
    verifying.user_verified = False
    with pytest.raises(SecondFactorInvalid):
        factors.verify_key(staff, verifying.get(json.loads(found[0])), found[1])
    verifying.user_verified = True
    found = factors.authentication_options(staff)
    assert found is not None
    assert factors.verify_key(staff, verifying.get(json.loads(found[0])), found[1]) == "webauthn"

    options_json, challenge = factors.registration_options(partner)
    options = json.loads(options_json)
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    factors.register_key(partner, plain.create(options), challenge)
    found = factors.authentication_options(partner)
    assert found is not None
    assert json.loads(found[0])["userVerification"] == "preferred"
    assert factors.verify_key(partner, plain.get(json.loads(found[0])), found[1]) == "webauthn"


def test_a_reset_removes_everything_and_clears_the_count(
    factors: SecondFactors,
    staff: uuid.UUID,
    session_factory: sessionmaker[Session],
    master_secret: MasterSecret,
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "guichet.accounts.second_factor")
    with transaction(session_factory) as session:
        enrol_totp(session, master_secret, staff, clock.now())
    factors.new_recovery_codes(staff)
    good = totp_code(TOTP_SECRET, totp_step(clock.now()))
    with pytest.raises(SecondFactorInvalid):
        factors.verify_totp(staff, "000000" if good != "000000" else "111111")
    store = SessionStore(session_factory, clock)
    store.create(staff, "password+totp")
    with transaction(session_factory) as session:
        assert reset_second_factors(session, staff, actor="user:admin") == 1
    with session_factory() as session:
        assert (
            session.scalars(select(SecondFactor).where(SecondFactor.user_id == staff)).all() == []
        )
        assert (
            session.scalars(select(RecoveryCode).where(RecoveryCode.user_id == staff)).all() == []
        )
        assert session.get_one(User, staff).failed_second_factors == 0
    assert _sessions_of(session_factory, staff) == []
    [logged] = [r for r in caplog.records if r.getMessage() == "accounts.second_factors_reset"]
    assert logged.fields == {"user": staff, "removed": 1, "actor": "user:admin"}  # type: ignore[attr-defined]

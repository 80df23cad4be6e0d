"""The second factor's rules (issue 14, C4): who must have one, TOTP codes (window, replay,
seed encrypted at rest), WebAuthn keys verified by ``webauthn`` against a software
authenticator (signature, challenge, origin, counter), recovery codes, lock-out, removal."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.errors import LastSecondFactor, SecondFactorInvalid
from guichet.accounts.models import (
    Membership,
    PartnerRole,
    ProviderRole,
    RecoveryCode,
    SecondFactor,
    User,
)
from guichet.accounts.passwords import Passwords
from guichet.accounts.second_factor import (
    TOTP_STEP,
    SecondFactors,
    matching_step,
    second_factor_required,
    totp_code,
    totp_step,
)
from guichet.accounts.service import create_user, grant_provider_role
from guichet.clock import FrozenClock
from guichet.db import transaction
from guichet.habilitation.models import Environment, Habilitation, HabilitationStatus
from guichet.habilitation.service import get_or_create_organisation
from guichet.secrets import MasterSecret
from tests.support.second_factor import TOTP_SECRET, SoftwareAuthenticator, enrol_totp
from tests.unit.accounts.conftest import FAST_HASHER, SIRET

PORTAL = "https://portail.guichet.test"


@pytest.fixture
def factors(
    session_factory: sessionmaker[Session], clock: FrozenClock, master_secret: MasterSecret
) -> SecondFactors:
    return SecondFactors(session_factory, clock, master_secret, PORTAL, Passwords(FAST_HASHER))


@pytest.fixture
def staff(session_factory: sessionmaker[Session], clock: FrozenClock) -> uuid.UUID:
    with transaction(session_factory) as session:
        user = create_user(session, "agent@dgfip.test", "Agent", clock.now(), verified=True)
        grant_provider_role(session, user, ProviderRole.INSTRUCTOR, clock.now())
        return user.id


def _member(
    session: Session, now: dt.datetime, apis: list[str], status: HabilitationStatus
) -> uuid.UUID:
    org = get_or_create_organisation(session, SIRET, "Banque d'exemple", now)
    user = create_user(session, f"{uuid.uuid4().hex[:8]}@banque.test", "Membre", now, verified=True)
    session.add(
        Membership(
            user_id=user.id, organisation_id=org.id, role=PartnerRole.APPLICANT, created_at=now
        )
    )
    session.add(
        Habilitation(
            organisation_id=org.id,
            environment=Environment.SANDBOX,
            demarche="Recherche de comptes",
            status=status,
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
    )
    session.flush()
    return user.id


def test_who_must_have_a_second_factor(
    session_factory: sessionmaker[Session], clock: FrozenClock, staff: uuid.UUID
) -> None:
    now = clock.now()
    with transaction(session_factory) as session:
        assert second_factor_required(session, staff)
        ficoba = _member(session, now, ["ficoba"], HabilitationStatus.SUSPENDED)
        assert second_factor_required(session, ficoba)
        other = create_user(session, "x@ville.test", "X", now, verified=True)
        assert not second_factor_required(session, other.id)
    with transaction(session_factory) as session:
        # Another API, or a terminated FICOBA habilitation: no C4 rule.
        session.execute(
            Habilitation.__table__.update().values(apis=["impot_particulier"])  # type: ignore[attr-defined]
        )
        assert not second_factor_required(session, ficoba)


def test_totp_code_within_its_window_once(
    factors: SecondFactors,
    staff: uuid.UUID,
    clock: FrozenClock,
    session_factory: sessionmaker[Session],
    master_secret: MasterSecret,
) -> None:
    with transaction(session_factory) as session:
        enrol_totp(session, master_secret, staff, clock.now())
    step = totp_step(clock.now())
    # RFC 6238 as any application computes it (pyotp's own TOTP, not ours).
    assert totp_code(TOTP_SECRET, step) == pyotp.TOTP(TOTP_SECRET).at(clock.now())
    assert factors.verify_totp(staff, totp_code(TOTP_SECRET, step)) == "totp"
    # The same code again, in the same step: a replay.
    with pytest.raises(SecondFactorInvalid):
        factors.verify_totp(staff, totp_code(TOTP_SECRET, step))
    # An older step than the last accepted, still within the window: refused too.
    with pytest.raises(SecondFactorInvalid):
        factors.verify_totp(staff, totp_code(TOTP_SECRET, step - 1))
    # The next step's code is accepted (a clock ahead by a step), and spaces are ignored.
    next_code = totp_code(TOTP_SECRET, step + 1)
    assert factors.verify_totp(staff, f"{next_code[:3]} {next_code[3:]}") == "totp"
    # Two steps away: outside the window.
    clock.advance(TOTP_STEP * 5)
    far = totp_step(clock.now()) + 2
    with pytest.raises(SecondFactorInvalid):
        factors.verify_totp(staff, totp_code(TOTP_SECRET, far))
    assert matching_step(TOTP_SECRET, "12345", clock.now()) is None
    assert matching_step(TOTP_SECRET, "abcdef", clock.now()) is None


def test_totp_seed_is_encrypted_at_rest(
    factors: SecondFactors,
    staff: uuid.UUID,
    session_factory: sessionmaker[Session],
    master_secret: MasterSecret,
    clock: FrozenClock,
) -> None:
    enrolment = factors.totp_enrolment(staff)
    assert enrolment.uri.startswith("otpauth://totp/guichet:agent%40dgfip.test?secret=")
    assert factors.totp_enrolment(staff).secret == enrolment.secret  # the same seed, waiting
    with session_factory() as session:
        row = session.scalars(select(SecondFactor)).one()
        assert row.confirmed_at is None
        assert row.totp_secret is not None
        assert enrolment.secret.encode() not in row.totp_secret
        assert master_secret.decrypt(row.totp_secret).decode() == enrolment.secret
    # Until its first code, the seed is no factor.
    assert not factors.status(staff).enrolled
    with pytest.raises(SecondFactorInvalid):
        factors.confirm_totp(
            staff,
            "000000"
            if totp_code(enrolment.secret, totp_step(clock.now())) != "000000"
            else "111111",
        )
    enrolled = factors.confirm_totp(
        staff, pyotp.TOTP(enrolment.secret).at(clock.now()), "Téléphone"
    )
    assert len(enrolled.recovery_codes) == 10
    status = factors.status(staff)
    assert status.enrolled
    assert status.has_totp
    assert status.required
    assert status.factors[0].label == "Téléphone"
    # Another key under another master secret cannot read it.
    other = MasterSecret(b"z" * 48)
    with session_factory() as session:
        row = session.scalars(select(SecondFactor)).one()
        with pytest.raises(Exception):  # noqa: B017, PT011 (Fernet's InvalidToken)
            other.decrypt(row.totp_secret or b"")


def test_webauthn_key_registered_and_verified(
    factors: SecondFactors, staff: uuid.UUID, session_factory: sessionmaker[Session]
) -> None:
    key = SoftwareAuthenticator(PORTAL)
    options_json, challenge = factors.registration_options(staff)
    options = json.loads(options_json)
    assert options["rp"]["id"] == "portail.guichet.test"
    enrolled = factors.register_key(staff, key.create(options), challenge, "Clé du bureau")
    assert enrolled.method == "webauthn"
    assert len(enrolled.recovery_codes) == 10
    with session_factory() as session:
        row = session.scalars(select(SecondFactor)).one()
        assert row.public_key
        assert row.credential_id in key.credentials
    # The same key cannot be registered twice (excluded from the next options).
    again = json.loads(factors.registration_options(staff)[0])
    assert again["excludeCredentials"][0]["id"]

    found = factors.authentication_options(staff)
    assert found is not None
    options_json, challenge = found
    options = json.loads(options_json)
    assert factors.verify_key(staff, key.get(options), challenge) == "webauthn"
    with session_factory() as session:
        assert session.scalars(select(SecondFactor)).one().sign_count == 1

    # Another challenge than the one issued, another origin, a counter that did not grow
    # (a cloned key), a signature by another key: all refused by the verification.
    options_json, challenge = factors.authentication_options(staff) or ("", "")
    options = json.loads(options_json)
    with pytest.raises(SecondFactorInvalid):
        factors.verify_key(staff, key.get({**options, "challenge": "AAAA"}), challenge)
    with pytest.raises(SecondFactorInvalid):
        factors.verify_key(staff, key.get(options, "https://attaquant.test"), challenge)
    with pytest.raises(SecondFactorInvalid):
        factors.verify_key(staff, key.get(options, counter=1), challenge)
    forger = SoftwareAuthenticator(PORTAL)
    forged_id = next(iter(key.credentials))
    forger.create(json.loads(factors.registration_options(staff)[0]))
    forger.credentials[forged_id] = next(iter(forger.credentials.values()))
    forger.counters[forged_id] = 100
    with pytest.raises(SecondFactorInvalid):
        factors.verify_key(staff, forger.get(options, credential_id=forged_id), challenge)
    # The genuine key still works with a fresh challenge (four refusals: no lock-out yet).
    options_json, challenge = factors.authentication_options(staff) or ("", "")
    assert factors.verify_key(staff, key.get(json.loads(options_json)), challenge) == "webauthn"


def test_registration_refused_on_another_challenge_or_origin(
    factors: SecondFactors, staff: uuid.UUID
) -> None:
    key = SoftwareAuthenticator(PORTAL)
    options_json, challenge = factors.registration_options(staff)
    options = json.loads(options_json)
    with pytest.raises(SecondFactorInvalid):
        factors.register_key(staff, key.create(options, "https://attaquant.test"), challenge)
    _, other_challenge = factors.registration_options(staff)
    with pytest.raises(SecondFactorInvalid):
        factors.register_key(staff, key.create(options), other_challenge)
    assert not factors.status(staff).enrolled


def test_recovery_codes_hashed_and_single_use(
    factors: SecondFactors,
    staff: uuid.UUID,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
) -> None:
    enrolment = factors.totp_enrolment(staff)
    codes = factors.confirm_totp(staff, pyotp.TOTP(enrolment.secret).at(clock.now())).recovery_codes
    with session_factory() as session:
        rows = session.scalars(select(RecoveryCode)).all()
        assert len(rows) == 10
        assert all(r.code_hash.startswith("$argon2id$") for r in rows)
        assert not any(c.replace("-", "") in r.code_hash for r in rows for c in codes)
    assert factors.verify_recovery_code(staff, codes[0].lower().replace("-", " ")) == "recovery"
    with pytest.raises(SecondFactorInvalid):
        factors.verify_recovery_code(staff, codes[0])
    assert factors.status(staff).recovery_codes_left == 9
    renewed = factors.new_recovery_codes(staff)
    with pytest.raises(SecondFactorInvalid):
        factors.verify_recovery_code(staff, codes[1])
    assert factors.verify_recovery_code(staff, renewed[0]) == "recovery"


def test_five_refusals_lock_the_account(
    factors: SecondFactors,
    staff: uuid.UUID,
    session_factory: sessionmaker[Session],
    master_secret: MasterSecret,
    clock: FrozenClock,
) -> None:
    with transaction(session_factory) as session:
        enrol_totp(session, master_secret, staff, clock.now())
    good = totp_code(TOTP_SECRET, totp_step(clock.now()))
    wrong = "000000" if good != "000000" else "111111"
    for _ in range(5):
        with pytest.raises(SecondFactorInvalid):
            factors.verify_totp(staff, wrong)
    with pytest.raises(SecondFactorInvalid) as refused:
        factors.verify_totp(staff, good)
    assert "bloqué" in refused.value.detail
    with session_factory() as session:
        assert session.get_one(User, staff).locked_until is not None
    clock.advance(16 * 60)
    assert factors.verify_totp(staff, totp_code(TOTP_SECRET, totp_step(clock.now()))) == "totp"


def test_the_last_factor_stays_while_required(
    factors: SecondFactors,
    staff: uuid.UUID,
    session_factory: sessionmaker[Session],
    master_secret: MasterSecret,
    clock: FrozenClock,
) -> None:
    with transaction(session_factory) as session:
        first = (
            enrol_totp(session, master_secret, staff, clock.now())
            and session.scalars(select(SecondFactor.id)).one()
        )
    with pytest.raises(LastSecondFactor):
        factors.remove(staff, first)
    key = SoftwareAuthenticator(PORTAL)
    options_json, challenge = factors.registration_options(staff)
    factors.register_key(staff, key.create(json.loads(options_json)), challenge)
    factors.remove(staff, first)
    assert [f.kind.value for f in factors.status(staff).factors] == ["webauthn"]

"""The demo instructor of ``guichet run``."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from guichet.accounts.passwords import Passwords
from guichet.accounts.second_factor import SecondFactors, totp_code, totp_step
from guichet.accounts.seed import ensure_instructor, instructor_file
from guichet.accounts.service import AccountService
from guichet.clock import FrozenClock
from guichet.runtime import Runtime
from guichet.secrets import MasterSecret
from guichet.settings import Settings
from tests.unit.accounts.conftest import FAST_HASHER


def test_instructor_is_created_once_and_can_sign_in(
    engine: Engine,
    session_factory: sessionmaker[Session],
    clock: FrozenClock,
    tmp_path: Path,
    service: AccountService,
    master_secret: MasterSecret,
) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path), engine, session_factory, master_secret, clock)
    email, password = ensure_instructor(runtime, Passwords(FAST_HASHER))
    assert password is not None
    path = instructor_file(runtime)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert password in path.read_text()
    signed_in = service.sign_in(email, password)
    view = service.account(signed_in.user_id)
    assert view is not None
    assert view.provider_roles == ["Instructeur"]
    assert ensure_instructor(runtime, Passwords(FAST_HASHER)) == (email, None)
    # Staff sign in with a second factor (issue 14, C4): the demo instructor's TOTP seed is
    # written next to its password, and its codes pass.
    text = path.read_text()
    seed = re.search(r"second facteur \(TOTP\) : ([A-Z2-7]+)\n", text)
    assert seed
    assert f"secret={seed[1]}" in text  # the otpauth:// URI too
    factors = SecondFactors(
        session_factory, clock, master_secret, "http://127.0.0.1", Passwords(FAST_HASHER)
    )
    code = totp_code(seed[1], totp_step(clock.now()))
    assert factors.verify_totp(signed_in.user_id, code) == "totp"


def test_staff_user_gets_a_set_password_link(service: AccountService) -> None:
    from guichet.accounts.models import ProviderRole

    user_id, link = service.add_staff_user(
        "Agent@DGFiP.example", "Agent", ProviderRole.SECURITY_OFFICER
    )
    token = link.partition("token=")[2]
    service.reset_password(token, "un mot de passe d'agent")
    assert service.sign_in("agent@dgfip.example", "un mot de passe d'agent").user_id == user_id
    again, _ = service.add_staff_user("agent@dgfip.example", "", ProviderRole.OPERATOR)
    view = service.account(again)
    assert again == user_id
    assert view is not None
    assert sorted(view.provider_roles) == ["Exploitant", "Responsable de la sécurité"]

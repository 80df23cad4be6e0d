"""The scheduler inside the serving process: one run per interval as of the injected clock, a
structured event per run, errors logged and retried, and never two runs at once (lock)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from guichet.accounts.sessions import SessionStore
from guichet.application import runner
from guichet.application.runner import operations_lock, run_once, run_periodically
from guichet.application.scheduler import TickReport
from guichet.clock import Clock, FrozenClock
from guichet.db import transaction
from guichet.federation.consent import months_before, record_consent
from guichet.federation.models import ConsentRecord
from guichet.runtime import open_runtime
from guichet.schema import metadata
from guichet.settings import Settings, use_settings


@dataclass
class Rt:
    settings: Settings
    session_factory: sessionmaker[Session]
    clock: Clock


@pytest.fixture
def rt(session_factory: sessionmaker[Session], clock: FrozenClock, tmp_path: Path) -> Rt:
    return Rt(Settings(data_dir=tmp_path / "var"), session_factory, clock)


def _consent(rt: Rt, at: dt.datetime) -> None:
    with transaction(rt.session_factory) as s:
        record_consent(
            s,
            subject="pseudonyme",
            client_id="c" * 64,
            habilitation_id=None,
            scopes=["openid"],
            accepted=True,
            at=at,
        )


def _consents(rt: Rt) -> int:
    with rt.session_factory() as s:
        return len(s.scalars(select(ConsentRecord.id)).all())


def _runs(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        dict(getattr(r, "fields", {}))
        for r in caplog.records
        if r.getMessage() == "operations:scheduler_run"
    ]


def test_a_run_uses_the_injected_clock_and_logs_one_event(
    rt: Rt, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="guichet.application")
    _consent(rt, months_before(clock.now(), 36) + dt.timedelta(minutes=1))
    report = run_once(rt)
    assert report is not None
    assert report.at == clock.now()
    assert report.purged_consents == 0  # not yet 36 months old by the injected clock
    clock.advance(120)
    report = run_once(rt)
    assert report is not None
    assert report.purged_consents == 1
    assert _consents(rt) == 0
    runs = _runs(caplog)
    assert [r["outcome"] for r in runs] == ["ok", "ok"]
    assert [r["idle"] for r in runs] == [True, False]
    assert all(isinstance(r["duration_ms"], int) for r in runs)


def test_a_run_purges_the_portal_s_expired_sessions(rt: Rt, clock: FrozenClock) -> None:
    store = SessionStore(rt.session_factory, clock)
    idle = store.create()
    clock.advance(3 * 3600)  # past the two idle hours
    live = store.create()
    report = run_once(rt)
    assert report is not None
    assert report.purged_sessions == 1
    assert store.load(idle.token) is None
    assert store.load(live.token) is not None


def test_an_error_is_logged_and_does_not_escape(
    rt: Rt, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="guichet.application")

    def broken(*_: Any, **__: Any) -> TickReport:
        raise RuntimeError("database gone, row 3999999930262")

    monkeypatch.setattr(runner, "tick", broken)
    assert run_once(rt) is None
    (run,) = _runs(caplog)
    assert run["outcome"] == "error"
    assert run["error"] == "RuntimeError"
    # The message may quote a row: it is not logged at INFO and above.
    assert "3999999930262" not in " ".join(
        f"{r.getMessage()} {getattr(r, 'fields', '')}"
        for r in caplog.records
        if r.levelno >= logging.INFO
    )


def test_a_second_run_is_skipped_while_the_lock_is_held(
    rt: Rt, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="guichet.application")
    _consent(rt, months_before(clock.now(), 37))
    with operations_lock(rt) as held:
        assert held
        with operations_lock(rt) as again:
            assert not again  # PostgreSQL: another session; SQLite: another descriptor
        assert run_once(rt) is None
        assert _consents(rt) == 1
    assert _runs(caplog)[0] == {"outcome": "skipped", "reason": "locked"}
    assert _consents(rt) == 1
    report = run_once(rt)  # released: the next run does the work
    assert report is not None
    assert report.purged_consents == 1


def test_the_command_line_takes_the_same_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guichet.commands.operations import app

    data_dir = tmp_path / "var"
    monkeypatch.setenv("GUICHET_DATA_DIR", str(tmp_path / "elsewhere"))  # the option wins
    settings = Settings(data_dir=data_dir)
    runtime = open_runtime(settings)
    try:
        engine = runtime.engine
        metadata.create_all(engine)  # tables a newer migration will bring
        cli = CliRunner()
        with operations_lock(runtime) as held:
            assert held
            result = cli.invoke(app, ["tick", "--data-dir", str(data_dir)])
            assert result.exit_code == 0, result.output
            assert "en cours" in result.output
        result = cli.invoke(app, ["tick", "--json", "--data-dir", str(data_dir)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["purged_consents"] == 0
        assert not (tmp_path / "elsewhere").exists()
    finally:
        use_settings(None)
        runtime.close()


def test_periodic_runs_retry_after_an_error(
    rt: Rt, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="guichet.application")
    real = runner.tick
    seen: list[dt.datetime] = []

    def flaky(runtime: Any, now: dt.datetime, **kw: Any) -> TickReport:
        seen.append(now)
        clock.advance(300)  # the injected clock moves as real time would between runs
        if len(seen) == 1:
            raise OSError("smtp down")
        return real(runtime, now, **kw)

    monkeypatch.setattr(runner, "tick", flaky)
    _consent(rt, months_before(clock.now(), 36) + dt.timedelta(seconds=150))

    async def main() -> None:
        task = asyncio.create_task(run_periodically(rt, 0.01))
        for _ in range(500):
            if len(seen) >= 3:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert len(seen) >= 3
    assert seen[1] - seen[0] == dt.timedelta(seconds=300)
    outcomes = [r["outcome"] for r in _runs(caplog)]
    assert outcomes[:3] == ["error", "ok", "ok"]
    # The consent fell due between the first (failed) run and the second one.
    assert _consents(rt) == 0


def test_zero_is_not_an_interval(rt: Rt) -> None:
    with pytest.raises(ValueError, match="0 means"):
        asyncio.run(run_periodically(rt, 0))

"""``--data-dir`` after the commands that open the data directory (issue 3 §2 spells
``guichet run --data-dir DIR``), with the same meaning as before them; the one after wins."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import guichet.cli as cli
import guichet.preflight as preflight
import guichet.workers as workers
from guichet.settings import Settings, get_settings, use_settings


@pytest.fixture(autouse=True)
def _reset_settings() -> Iterator[None]:
    # The command's callback configures logging on the root logger, to the stderr of the
    # CliRunner of that moment: put back what was there, or later CLI tests read our logs.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    use_settings(None)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """What ``serve gateway|portal`` would serve with, instead of serving."""
    seen: list[Settings] = []

    def serve_origin(settings: Settings, *_: Any) -> None:
        seen.append(settings)

    monkeypatch.setattr(workers, "serve_origin", serve_origin)
    # The start-up checks (issue 12) are tested in tests/unit/test_startup.py.
    monkeypatch.setattr(preflight, "check_serving", lambda *_, **__: None)
    return seen


@pytest.fixture
def initialised(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The data directory ``init`` would initialise, instead of initialising it."""
    seen: list[Path] = []

    def initialise(households: int, *, demo: bool = True) -> tuple[object, Path]:
        seen.append(get_settings().data_dir)
        return object(), Path("unused")

    monkeypatch.setattr(cli, "_initialise", initialise)
    return seen


def _invoke(*args: str) -> None:
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "portal", "--port", "8001"],
        ["serve", "gateway", "--environment", "sandbox", "--port", "8444"],
    ],
    ids=["portal", "gateway"],
)
def test_serve_takes_the_option_after_the_command(
    served: list[Settings], tmp_path: Path, command: list[str]
) -> None:
    _invoke(*command, "--data-dir", str(tmp_path / "after"))
    _invoke("--data-dir", str(tmp_path / "before"), *command)
    _invoke("--data-dir", str(tmp_path / "before"), *command, "--data-dir", str(tmp_path / "after"))
    assert [s.data_dir for s in served] == [
        tmp_path / "after",
        tmp_path / "before",
        tmp_path / "after",  # the more specific one wins
    ]


def test_init_takes_the_option_after_the_command(initialised: list[Path], tmp_path: Path) -> None:
    _invoke("init", "--data-dir", str(tmp_path / "after"))
    _invoke("--data-dir", str(tmp_path / "before"), "init", "--data-dir", str(tmp_path / "after"))
    assert initialised == [tmp_path / "after", tmp_path / "after"]


def test_the_option_must_not_name_a_file(initialised: list[Path], tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(cli.app, ["init", "--data-dir", str(tmp_path / "file")])
    assert result.exit_code == 2
    assert initialised == []

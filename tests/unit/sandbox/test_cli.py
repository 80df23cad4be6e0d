"""``guichet sandbox seed`` on a fresh data directory."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from guichet.commands.sandbox import app
from guichet.records.models import IrSituation
from guichet.runtime import open_runtime
from guichet.settings import Settings, use_settings


def test_seed_command(tmp_path: Path) -> None:
    use_settings(Settings(data_dir=tmp_path / "data"))
    try:
        result = CliRunner().invoke(app, ["seed", "--households", "5", "--reference-year", "2026"])
        assert result.exit_code == 0, result.output
        assert "2023–2025" in result.output
        runtime = open_runtime()
        try:
            with runtime.session_factory() as s:
                years = set(s.scalars(select(IrSituation.annrev).distinct()))
                count = s.scalar(select(func.count()).select_from(IrSituation))
        finally:
            runtime.close()
        assert years == {2023, 2024, 2025}
        assert count is not None
        assert count > 15 * 3
    finally:
        use_settings(None)

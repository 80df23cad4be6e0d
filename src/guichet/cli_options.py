"""Options that several ``guichet`` commands share, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from guichet.settings import use_settings, with_overrides

# The same option on the commands that open the data directory (``guichet run --data-dir
# DIR``, as issue 3 spells it): no envvar here, so a ``GUICHET_DATA_DIR`` in the environment
# does not override ``guichet --data-dir DIR run``; the settings read it when neither is given.
CommandDataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Répertoire de données (par défaut GUICHET_DATA_DIR, sinon ./var).",
        file_okay=False,
        show_default=False,
    ),
]


def use_data_dir(data_dir: Path | None) -> None:
    """A command's own ``--data-dir``: as the top-level option, and more specific, so it wins."""
    if data_dir is not None:
        use_settings(with_overrides(data_dir=data_dir))

"""``guichet sandbox …``: (re)build the sandbox's fictive population."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from guichet.runtime import open_runtime
from guichet.sandbox.population import seed as seed_population

app = typer.Typer(help="Bac à sable : population fictive.", no_args_is_help=True)

PARIS = ZoneInfo("Europe/Paris")


@app.callback()
def sandbox() -> None:
    """Bac à sable : population fictive (personas et foyers générés)."""


@app.command("seed")
def seed(
    households: Annotated[
        int, typer.Option(min=0, help="Nombre de foyers fictifs générés.")
    ] = 10_000,
    seed: Annotated[int, typer.Option(help="Graine : mêmes options, mêmes données.")] = 2026,
    reference_year: Annotated[
        int | None,
        typer.Option(help="Année N ; revenus N-1, N-2, N-3. Par défaut l'année en cours."),
    ] = None,
) -> None:
    """Remplacer la population du bac à sable (personas fixes + foyers générés)."""
    runtime = open_runtime()
    try:
        year = reference_year or runtime.clock.now().astimezone(PARIS).year
        report = seed_population(
            runtime.session_factory, households=households, seed=seed, reference_year=year
        )
    finally:
        runtime.close()
    table = Table(title="Population du bac à sable", show_header=False)
    for label, value in (
        ("Magasin", report.store),
        ("Graine", str(report.seed)),
        ("Année de référence", f"{report.reference_year} (revenus {year - 3}–{year - 1})"),
        ("Foyers générés", f"{report.households:,}".replace(",", " ")),
        ("Personnes", f"{report.persons:,}".replace(",", " ")),
        ("Situations IR", f"{report.situations:,}".replace(",", " ")),
        ("Durée", f"{report.seconds:.1f} s"),
    ):
        table.add_row(label, value)
    Console().print(table)

"""``guichet operations tick``: run the scheduled operations once (cron, systemd timer)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from guichet.operations.scheduler import tick
from guichet.runtime import open_runtime

app = typer.Typer(
    help="Les tâches d'exploitation planifiées (préavis, homologations, purge).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(soft_wrap=True)


@app.callback()
def _group() -> None:
    """Les tâches d'exploitation planifiées."""


@app.command("tick")
def tick_command(
    as_json: Annotated[bool, typer.Option("--json", help="Rapport en JSON.")] = False,
) -> None:
    """Exécuter une fois les tâches dues : fin des préavis de résiliation, avis trois mois avant
    l'échéance d'une homologation, suspension à l'échéance et reprise après une nouvelle
    attestation, purge des demandes six ans après la fin de l'habilitation. Idempotent :
    relancé, il n'envoie rien deux fois."""
    runtime = open_runtime()
    try:
        report = tick(runtime, runtime.clock.now())
    finally:
        runtime.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        console.print(
            f"Préavis échus : {len(report.terminated)} ; avis d'échéance : {len(report.notices)} ; "
            f"suspensions : {len(report.suspended)} ; reprises : {len(report.resumed)} ; "
            f"demandes purgées : {len(report.purged_requests)}."
        )
    if report.failures:
        console.print(f"[red]À reprendre au prochain passage :[/] {', '.join(report.failures)}")
        raise typer.Exit(1)

"""``guichet operations tick``: run the scheduled operations once (cron, systemd timer)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from guichet.application.runner import operations_lock
from guichet.application.scheduler import tick
from guichet.cli_options import CommandDataDir, use_data_dir
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
    data_dir: CommandDataDir = None,
) -> None:
    """Exécuter une fois les tâches dues : fin des préavis de résiliation, avis trois mois avant
    l'échéance d'une homologation, suspension à l'échéance et reprise après une nouvelle
    attestation, purge des demandes six ans après la fin de l'habilitation et des
    consentements après trente-six mois. Idempotent : relancé, il n'envoie rien deux fois.
    Jamais deux à la fois : si une autre exécution est en cours (serveur ou autre commande),
    celle-ci ne fait rien."""
    use_data_dir(data_dir)
    runtime = open_runtime()
    try:
        with operations_lock(runtime) as held:
            report = tick(runtime, runtime.clock.now()) if held else None
    finally:
        runtime.close()
    if report is None:
        console.print("Une autre exécution des tâches planifiées est en cours : rien à faire.")
        return
    if as_json:
        typer.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        console.print(
            f"Préavis échus : {len(report.terminated)} ; avis d'échéance : {len(report.notices)} ; "
            f"suspensions : {len(report.suspended)} ; reprises : {len(report.resumed)} ; "
            f"demandes purgées : {len(report.purged_requests)} ; "
            f"consentements purgés : {report.purged_consents} ; "
            f"sessions expirées purgées : {report.purged_sessions}."
        )
    if report.failures:
        console.print(f"[red]À reprendre au prochain passage :[/] {', '.join(report.failures)}")
        raise typer.Exit(1)

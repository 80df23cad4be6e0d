"""``guichet data …``: load the provider's extracts into a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from guichet.records.importer import STORES, ImportRejected, import_impot_particulier
from guichet.runtime import open_runtime

app = typer.Typer(
    help="Données du fournisseur : chargement des extraits dans un magasin.", no_args_is_help=True
)
import_app = typer.Typer(help="Charger un extrait.", no_args_is_help=True)
app.add_typer(import_app, name="import")

_MAX_ERRORS_SHOWN = 50


@app.callback()
def data() -> None:
    """Données du fournisseur : chargement des extraits dans un magasin."""


@import_app.callback()
def load() -> None:
    """Charger un extrait du fournisseur (tout ou rien)."""


@import_app.command("impot-particulier")
def impot_particulier(
    file: Annotated[Path, typer.Argument(help="Extrait JSON Lines (voir docs/catalogue.md).")],
    store: Annotated[
        str, typer.Option(help="Magasin cible : production ou sandbox.")
    ] = "production",
) -> None:
    """Charger des situations IR ; un fichier comportant une ligne invalide n'est pas chargé."""
    out, err = Console(soft_wrap=True), Console(stderr=True, soft_wrap=True)
    if store not in STORES:
        err.print(f"[red]Magasin inconnu[/red] {store!r} : choisir parmi {', '.join(STORES)}.")
        raise typer.Exit(2)
    if not file.is_file():
        err.print(f"[red]Fichier introuvable :[/red] {file}")
        raise typer.Exit(2)
    runtime = open_runtime()
    try:
        report = import_impot_particulier(runtime.session_factory, file, store=store)
    except ImportRejected as exc:
        err.print(
            f"[red]Fichier rejeté, rien n'a été chargé :[/red] "
            f"{len(exc.errors)} ligne(s) invalide(s)."
        )
        for error in exc.errors[:_MAX_ERRORS_SHOWN]:
            err.print(f"  {error}", markup=False, highlight=False)
        if len(exc.errors) > _MAX_ERRORS_SHOWN:
            err.print(f"  … et {len(exc.errors) - _MAX_ERRORS_SHOWN} autre(s).")
        raise typer.Exit(2) from None
    finally:
        runtime.close()
    out.print(
        f"[green]{report.situations}[/green] situation(s) IR, [green]{report.ifi}[/green] "
        f"déclaration(s) IFI et [green]{report.th_avis}[/green] avis de taxe d'habitation "
        f"chargés dans le magasin [bold]{report.store}[/bold] ({report.pairs} couple(s) "
        "SPI/année remplacé(s))."
    )

"""``guichet data …``: load the provider's extracts into a store.

The production store is a database of its own (``GUICHET_PRODUCTION_RECORDS_URL``, issue 12):
this command is, with the production gateway, the only one that opens it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from sqlalchemy.orm import Session, sessionmaker

from guichet.records.ficoba_importer import import_ficoba
from guichet.records.importer import STORES, ImportRejected, import_impot_particulier
from guichet.records.r2p_importer import import_r2p
from guichet.runtime import open_runtime

app = typer.Typer(
    help="Données du fournisseur : chargement des extraits dans un magasin.", no_args_is_help=True
)
import_app = typer.Typer(help="Charger un extrait.", no_args_is_help=True)
app.add_typer(import_app, name="import")

_MAX_ERRORS_SHOWN = 50
R = TypeVar("R")

Store = Annotated[str, typer.Option(help="Magasin cible : production ou sandbox.")]


@app.callback()
def data() -> None:
    """Données du fournisseur : chargement des extraits dans un magasin."""


@import_app.callback()
def load() -> None:
    """Charger un extrait du fournisseur (tout ou rien)."""


def _load(file: Path, store: str, loader: Callable[[sessionmaker[Session], Path, str], R]) -> R:
    """Check the arguments, open the store's database, load; a rejected file is listed line
    by line on standard error (exit 2), nothing being loaded."""
    err = Console(stderr=True, soft_wrap=True)
    if store not in STORES:
        err.print(f"[red]Magasin inconnu[/red] {store!r} : choisir parmi {', '.join(STORES)}.")
        raise typer.Exit(2)
    if not file.is_file():
        err.print(f"[red]Fichier introuvable :[/red] {file}")
        raise typer.Exit(2)
    runtime = open_runtime()
    try:
        return loader(runtime.records(store), file, store)
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


@import_app.command("impot-particulier")
def impot_particulier(
    file: Annotated[Path, typer.Argument(help="Extrait JSON Lines (voir docs/catalogue.md).")],
    store: Store = "production",
) -> None:
    """Charger des situations IR, IFI et taxe d'habitation ; un fichier comportant une ligne
    invalide (ou vide, ou pas en UTF-8) n'est pas chargé."""
    report = _load(
        file, store, lambda factory, path, s: import_impot_particulier(factory, path, store=s)
    )
    Console(soft_wrap=True).print(
        f"[green]{report.situations}[/green] situation(s) IR, [green]{report.ifi}[/green] "
        f"déclaration(s) IFI et [green]{report.th_avis}[/green] avis de taxe d'habitation "
        f"chargés dans le magasin [bold]{report.store}[/bold] ({report.pairs} couple(s) "
        "SPI/année remplacé(s))."
    )


@import_app.command("r2p")
def r2p(
    file: Annotated[Path, typer.Argument(help="Extrait JSON Lines (voir docs/catalogue.md).")],
    store: Store = "production",
) -> None:
    """Charger des personnes (état civil, adresse) pour l'API R2P ; un fichier comportant une
    ligne invalide (ou vide, ou pas en UTF-8) n'est pas chargé."""
    report = _load(file, store, lambda factory, path, s: import_r2p(factory, path, store=s))
    Console(soft_wrap=True).print(
        f"[green]{report.persons}[/green] personne(s) chargée(s) dans le magasin "
        f"[bold]{report.store}[/bold] ({report.replaced} remplacée(s))."
    )


@import_app.command("ficoba")
def ficoba(
    file: Annotated[Path, typer.Argument(help="Extrait JSON Lines (voir docs/catalogue.md).")],
    store: Store = "production",
) -> None:
    """Charger le fichier des comptes bancaires (FICOBA) : il remplace tout le fichier du
    magasin ; un extrait comportant une ligne invalide (ou vide, ou pas en UTF-8) n'est pas
    chargé."""
    report = _load(file, store, lambda factory, path, s: import_ficoba(factory, path, store=s))
    Console(soft_wrap=True).print(
        f"Fichier des comptes bancaires chargé dans le magasin [bold]{report.store}[/bold] : "
        f"[green]{report.comptes}[/green] compte(s), {report.detentions} détention(s), "
        f"{report.personnes_physiques} personne(s) physique(s), {report.personnes_morales} "
        f"personne(s) morale(s), {report.etablissements} établissement(s), "
        f"{report.guichets} guichet(s)."
    )

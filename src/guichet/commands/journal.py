"""``guichet journal``: verify the chain and its signed checkpoints, write a checkpoint, export
records for an investigation, apply retention."""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from stdnum.exceptions import ValidationError
from stdnum.fr import nif

from guichet.errors import JournalUnavailable
from guichet.habilitation.models import Environment
from guichet.journal import checkpoint
from guichet.journal.chain import engine_of, record_table
from guichet.journal.export import ExportFormat
from guichet.journal.export import export as export_records
from guichet.journal.retention import purge as purge_records
from guichet.journal.verify import VerifyReport
from guichet.journal.verify import verify as verify_chain
from guichet.runtime import Runtime, open_runtime
from guichet.startup import StartupError

app = typer.Typer(
    help="Vérifier, exporter et purger le journal des échanges.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Messages go to stderr: stdout carries nothing but exported records.
console = Console(stderr=True, soft_wrap=True)

_DATE_HELP = "AAAA-MM-JJ ou date et heure ISO 8601 (UTC sans décalage indiqué)"


def _parse_date(value: str, *, end: bool) -> dt.datetime:
    text = value.strip()
    try:
        if "T" not in text and " " not in text and ":" not in text:
            day = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
            # A day given as the upper bound includes that whole day.
            return day + dt.timedelta(days=1) if end else day
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"date invalide « {value} » : {_DATE_HELP} attendue.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _parse_from(value: str) -> dt.datetime:
    return _parse_date(value, end=False)


def _parse_to(value: str) -> dt.datetime:
    return _parse_date(value, end=True)


def _parse_spi(value: str) -> str:
    try:
        return str(nif.validate(value))
    except ValidationError:
        # Never echo the SPI: it identifies a person.
        raise typer.BadParameter("numéro SPI invalide (13 chiffres, clé de contrôle).") from None


@contextmanager
def _runtime() -> Iterator[Runtime]:
    try:
        runtime = open_runtime()
    except StartupError as exc:  # a setting or a service at fault, named by the check
        raise _fail(str(exc), 1) from None
    except SQLAlchemyError as exc:
        raise _fail(f"base de données inaccessible ({type(exc).__name__}).", 1) from None
    try:
        yield runtime
    except (SQLAlchemyError, JournalUnavailable) as exc:
        raise _fail(f"base de données inaccessible ({type(exc).__name__}).", 1) from None
    finally:
        runtime.close()


def _fail(message: str, code: int) -> typer.Exit:
    console.print(f"[bold red]Erreur :[/] {message}")
    return typer.Exit(code)


@app.command()
def verify() -> None:
    """Vérifie le chaînage du journal (code 1 et premier enregistrement fautif s'il est altéré),
    puis que la chaîne porte encore chaque point de contrôle signé (journal checkpoint)."""
    with _runtime() as runtime:
        report = verify_chain(runtime.session_factory)
        if not report.ok:
            _print_bad(runtime, report)
            raise typer.Exit(1)
        console.print(f"[green]Journal intègre[/] : {report.checked} enregistrement(s) vérifié(s).")
        if not _checkpoints_hold(runtime):
            raise typer.Exit(1)


def _checkpoints_hold(runtime: Runtime) -> bool:
    """The signed checkpoints kept outside the database still match the chain."""
    directory = runtime.settings.resolved_checkpoint_dir
    present = any(checkpoint.files(directory))
    key = checkpoint.public_key(runtime.settings.data_dir)
    if not present:
        console.print(
            f"[yellow]Aucun point de contrôle[/] dans {directory} : la tête de chaîne n'est "
            "ancrée nulle part hors de la base (guichet journal checkpoint)."
        )
        return True
    if key is None:
        console.print(
            f"[bold red]Points de contrôle non vérifiables[/] : clé {checkpoint.KEY_FILE} "
            f"absente de {runtime.settings.data_dir}."
        )
        return False
    result = checkpoint.verify_checkpoints(runtime.session_factory, key, directory)
    if result.ok:
        purged = f", {result.skipped} dans la partie purgée" if result.skipped else ""
        console.print(
            f"[green]Points de contrôle[/] : {result.checked} concordent avec la chaîne{purged}."
        )
        return True
    console.print(
        f"[bold red]Journal réécrit[/] : le point de contrôle {result.file} ne concorde plus."
    )
    console.print(f"Motif : {result.reason}")
    return False


@app.command("checkpoint")
def checkpoint_command() -> None:
    """Écrit un point de contrôle signé de la tête de chaîne hors de la base
    (GUICHET_JOURNAL_CHECKPOINT_DIR) et l'envoie à GUICHET_JOURNAL_CHECKPOINT_MAIL.

    À lancer périodiquement (deploy/guichet-journal-checkpoint.timer) ; journal verify
    signale ensuite toute chaîne réécrite ou tronquée depuis.
    """
    from guichet.mail import Mail, build_mailer
    from guichet.mail.mailer import MailError

    with _runtime() as runtime:
        settings = runtime.settings
        key = checkpoint.load_signing_key(settings.data_dir)
        point = checkpoint.current(runtime.session_factory, runtime.clock.now())
        try:
            path = checkpoint.write(point, key, settings.resolved_checkpoint_dir)
        except OSError as exc:
            raise _fail(
                f"impossible d'écrire dans {settings.resolved_checkpoint_dir} : {exc.strerror}.", 1
            ) from None
        console.print(f"Point de contrôle seq {point.seq} écrit : {path}")
        if settings.journal_checkpoint_mail:
            mail = Mail(
                to=settings.journal_checkpoint_mail,
                subject=f"Journal des échanges : point de contrôle seq {point.seq}",
                text="Point de contrôle signé de la tête du journal des échanges, à conserver "
                "hors de la plateforme. guichet journal verify le compare à la chaîne.\n\n"
                + checkpoint.document(point, key),
                kind="journal:checkpoint",
                ref=str(point.seq),
            )
            try:
                build_mailer(settings, runtime.clock).send(mail)
            except MailError as exc:
                raise _fail(f"point de contrôle écrit, mais non envoyé : {exc}", 1) from None
            console.print(f"Envoyé à {settings.journal_checkpoint_mail}.")


def _print_bad(runtime: Runtime, report: VerifyReport) -> None:
    console.print(
        f"[bold red]Journal altéré[/] après {report.checked} enregistrement(s) intègre(s) : "
        f"premier enregistrement fautif seq {report.first_bad_seq}."
    )
    console.print(f"Motif : {report.reason}")
    try:
        with engine_of(runtime.session_factory).connect() as conn:
            row = conn.execute(
                select(record_table).where(record_table.c.seq == report.first_bad_seq)
            ).first()
    except Exception:  # an unreadable (tampered) row: the seq and reason say enough
        row = None
    if row is not None:
        # Ids, codes and the subject's pseudonym only: no personal data in clear.
        for name in (
            "id",
            "at",
            "environment",
            "correlation_id",
            "partner_id",
            "operation",
            "outcome",
            "http_status",
            "prev_hash",
            "hash",
        ):
            console.print(f"  {name} = {getattr(row, name)}")


@app.command()
def export(
    start: Annotated[
        dt.datetime | None,
        typer.Option(
            "--from", parser=_parse_from, metavar="DATE", help=f"Début inclus : {_DATE_HELP}."
        ),
    ] = None,
    end: Annotated[
        dt.datetime | None,
        typer.Option(
            "--to",
            parser=_parse_to,
            metavar="DATE",
            help=f"Fin exclue : {_DATE_HELP} ; un jour seul (AAAA-MM-JJ) est inclus en entier.",
        ),
    ] = None,
    partner: Annotated[
        str | None,
        typer.Option(
            "--partner",
            metavar="ORGANISATION",
            help="Le partenaire : son SIRET, son nom (ou une partie, sans casse) ou son "
            "identifiant (UUID).",
        ),
    ] = None,
    environment: Annotated[
        Environment | None,
        typer.Option("--environment", help="Seulement cet environnement."),
    ] = None,
    subject_spi: Annotated[
        str | None,
        typer.Option(
            "--subject-spi",
            parser=_parse_spi,
            metavar="SPI",
            help="Échanges concernant cette personne (recherchée par son pseudonyme).",
        ),
    ] = None,
    fmt: Annotated[
        ExportFormat, typer.Option("--format", help="Format de sortie.")
    ] = ExportFormat.JSONL,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", dir_okay=False, help="Fichier de sortie (sinon la sortie standard)."
        ),
    ] = None,
) -> None:
    """Exporte les enregistrements (avec seq, hash et prev_hash) pour une enquête."""
    if start is not None and end is not None and start >= end:
        raise _fail("--from doit précéder --to.", 2)
    with _runtime() as runtime:
        subject = runtime.master.pseudonym(subject_spi) if subject_spi else None
        partner_ids = _partner_ids(runtime, partner) if partner is not None else None
        write = partial(
            export_records,
            runtime.session_factory,
            start=start,
            end=end,
            partner_id=partner_ids,
            subject=subject,
            environment=environment.value if environment else None,
            fmt=fmt,
        )
        if output is None:
            count = write(sys.stdout)
            sys.stdout.flush()
        else:
            try:
                with output.open("w", encoding="utf-8", newline="") as out:
                    count = write(out)
            except OSError as exc:
                raise _fail(f"impossible d'écrire {output} : {exc.strerror}.", 1) from None
    where = f" dans {output}" if output else ""
    console.print(f"{count} enregistrement(s) exporté(s){where}.")


def _partner_ids(runtime: Runtime, given: str) -> list[uuid.UUID]:
    """The organisation ``given`` names: a UUID, a SIRET, else its name (exact, then a part
    of it, without case); several organisations for one name is an error that lists them."""
    from sqlalchemy import func

    from guichet.habilitation.models import Organisation

    text = given.strip()
    try:
        return [uuid.UUID(text)]
    except ValueError:
        pass
    with runtime.session_factory() as session:
        digits = text.replace(" ", "")
        if digits.isdigit():
            found = list(session.scalars(select(Organisation).where(Organisation.siret == digits)))
        else:
            name = func.lower(Organisation.name)
            found = list(session.scalars(select(Organisation).where(name == text.lower())))
            if not found:
                pattern = "%" + text.lower().replace("%", r"\%").replace("_", r"\_") + "%"
                found = list(
                    session.scalars(
                        select(Organisation)
                        .where(name.like(pattern, escape="\\"))
                        .order_by(Organisation.name)
                    )
                )
        if not found:
            raise _fail(f"aucune organisation ne répond à « {text} ».", 2)
        if len(found) > 1:
            listed = "; ".join(f"{o.name} (SIRET {o.siret})" for o in found[:20])
            raise _fail(
                f"plusieurs organisations répondent à « {text} » : {listed}. "
                "Précisez par le SIRET.",
                2,
            )
        return [found[0].id]


@app.command()
def purge(
    retention_days: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Durée de conservation en jours [défaut : GUICHET_JOURNAL_RETENTION_DAYS, 730].",
        ),
    ] = None,
    skip_verify: Annotated[
        bool, typer.Option("--skip-verify", help="Purger même si le journal ne se vérifie pas.")
    ] = False,
) -> None:
    """Supprime les enregistrements au-delà de la durée de conservation, sans rompre la chaîne."""
    with _runtime() as runtime:
        days = retention_days or runtime.settings.journal_retention_days
        if not skip_verify:
            # Purging would erase the evidence of a tampering in the purged part.
            report = verify_chain(runtime.session_factory)
            if not report.ok:
                _print_bad(runtime, report)
                raise _fail("journal altéré : purge refusée (voir --skip-verify).", 1)
        deleted = purge_records(
            runtime.session_factory, now=runtime.clock.now(), retention_days=days
        )
    console.print(f"{deleted} enregistrement(s) de plus de {days} jours supprimé(s).")

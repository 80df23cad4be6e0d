"""The citizen's exchanges, whole, to download: CSV (cells neutralised for spreadsheets)
and JSON, with the same columns."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from typing import Final

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from guichet.logs import event
from guichet.portal.citizen.history import Exchange
from guichet.portal.citizen.space import HOME_PATH, signed_in, space
from guichet.portal.web import redirect
from guichet.spreadsheet import spreadsheet_cell

log = logging.getLogger(__name__)

DOWNLOAD_COLUMNS: Final = (
    "date",
    "environnement",
    "partenaire",
    "demarche",
    "api",
    "operation",
    "donnees_transmises",
    "resultat",
    "motif",
    "identifiant_echange",
    "identifiant_correlation",
)


def exchanges_csv(exchanges: Sequence[Exchange]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(DOWNLOAD_COLUMNS)
    for exchange in exchanges:
        row = exchange.row()
        writer.writerow(
            spreadsheet_cell("; ".join(row[c]) if isinstance(row[c], list) else str(row[c]))
            for c in DOWNLOAD_COLUMNS
        )
    return out.getvalue()


def exchanges_json(exchanges: Sequence[Exchange]) -> str:
    return json.dumps([e.row() for e in exchanges], ensure_ascii=False, indent=2) + "\n"


async def download_csv(request: Request) -> Response:
    return await _download(request, "csv")


async def download_json(request: Request) -> Response:
    return await _download(request, "json")


async def _download(request: Request, fmt: str) -> Response:
    """The citizen's own records, whole: the subject comes from their cookie, nothing else."""
    citizen = await signed_in(request)
    if citizen is None:
        return redirect(request, HOME_PATH)
    found = await run_in_threadpool(space(request).history.all, citizen.subject)
    event(log, "portal.citizen:download", format=fmt, records=len(found))
    if fmt == "csv":
        body, media = exchanges_csv(found), "text/csv; charset=utf-8"
    else:
        body, media = exchanges_json(found), "application/json"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="mes-echanges.{fmt}"'},
    )

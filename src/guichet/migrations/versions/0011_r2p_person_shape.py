"""R2P person addresses in the provider's AdresseReponse shape

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-10 10:00:00

``person.adresse`` was guichet's own shape (``voie``, ``complementAdresse``, ``codePostal``,
``commune``, ``codeCommune`` as a COG, ``codePays``); it becomes R2P's ``AdresseReponse``
(``cdPays``, ``lbPays``, ``cdDepartement``, ``lbDepartement``, ``cdTOM``, ``lbTOM``,
``cdCommune`` on three characters, ``lbCommune``, ``cdVoie``, ``lbVoie``, ``numeroVoie``,
``indiceDeRepetition``), every value a string and those that do not exist omitted. The
conversion is ``guichet.records.geography.adresse_reponse``, the one the sandbox writes with.
Sandbox persons are re-seeded (0010 deleted them); this converts whatever rows remain, in
any store (the production persons). The postal code and the address complement have no
place in R2P's address and are dropped; a downgrade cannot restore them.
"""

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from guichet.records.geography import FRANCE, adresse_reponse, commune_cog

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000

_person = sa.table(
    "person",
    sa.column("store", sa.String()),
    sa.column("spi", sa.String()),
    sa.column("adresse", sa.JSON()),
)


def _to_r2p(old: dict[str, Any]) -> dict[str, Any] | None:
    if "cdPays" in old:
        return None  # already converted
    return adresse_reponse(
        voie=old.get("voie"),
        commune=old.get("codeCommune") or None,
        commune_name=old.get("commune"),
        pays=old.get("codePays") or FRANCE,
    )


def _to_guichet(new: dict[str, Any]) -> dict[str, Any] | None:
    if "cdPays" not in new:
        return None
    department = new.get("cdDepartement") or new.get("cdTOM")
    code = new.get("cdCommune")
    number = new.get("numeroVoie", "") + new.get("indiceDeRepetition", "")
    voie = " ".join(p for p in (number, new.get("lbVoie", "")) if p)
    return {
        "voie": voie or None,
        "complementAdresse": None,
        "codePostal": None,
        "commune": new.get("lbCommune"),
        "codeCommune": commune_cog(department, code) if department and code else None,
        "codePays": new["cdPays"],
    }


def _convert(change: Callable[[dict[str, Any]], dict[str, Any] | None]) -> None:
    """Every person row, by primary-key pages: rewrite ``adresse`` where ``change`` says."""
    connection = op.get_bind()
    last: tuple[str, str] | None = None
    while True:
        page = sa.select(_person.c.store, _person.c.spi, _person.c.adresse)
        if last is not None:
            page = page.where(sa.tuple_(_person.c.store, _person.c.spi) > sa.tuple_(*last))
        rows = connection.execute(page.order_by(_person.c.store, _person.c.spi).limit(_BATCH)).all()
        if not rows:
            return
        updates = [
            {"k_store": store, "k_spi": spi, "new": new}
            for store, spi, adresse in rows
            if isinstance(adresse, dict) and (new := change(adresse)) is not None
        ]
        if updates:
            connection.execute(
                _person.update()
                .where(
                    _person.c.store == sa.bindparam("k_store"),
                    _person.c.spi == sa.bindparam("k_spi"),
                )
                .values(adresse=sa.bindparam("new", type_=sa.JSON())),
                updates,
            )
        last = (rows[-1][0], rows[-1][1])


def upgrade() -> None:
    _convert(_to_r2p)


def downgrade() -> None:
    _convert(_to_guichet)

"""records in the provider's shapes (issue 9)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 10:00:00.000000

A data migration; the schema does not change.

**Sandbox store**: every ``store='sandbox'`` row of ``person``, ``ir_situation``,
``ifi_situation``, ``th_local`` and ``th_avis`` is deleted. ``guichet init`` / ``guichet
run`` seed the sandbox again, deterministically, when it holds no IR situation, in the
new shapes and with the new personas.

**Production store**: the records loaded by ``guichet data import`` are converted in place.

- IR (``ir_situation.record``):
  - ``indDeficit`` and ``indOptionImpotSepar``: the integers 0/1 become the strings
    ``"0"``/``"1"``;
  - ``sitParDeclaree``: the form's boxes ``case*`` become the provider's
    ``SitPartJAXBbean``, every member ``"0"`` or ``"1"``: ``sitPartP`` ← ``caseP``
    (declarant invalid), ``sitPartF`` ← ``caseF`` (spouse invalid), ``sitPartW`` ←
    ``caseW`` or ``caseS`` (veteran's card over 74: S is the single declarant's box, W the
    couple's), ``pensVeufGuerre`` ← ``caseG`` (war widow's pension), ``indEnfSeul5ansMin``
    ← ``caseL`` (lives alone, raised a child alone at least five years); ``sitComb`` and
    ``indNonSeul`` have no box to come from and are ``"0"``; ``caseT`` (single parent) is
    not kept here, the record already carries it as ``sitParIso`` / ``sitPart`` ``T``;
    any other ``case*`` is dropped;
  - every ``null`` is dropped, at any depth, except the four top-level values the
    convention declares nullable (``rfr``, ``sitFam``, ``sitParIso``,
    ``revenuBrutGlobal``); an empty ``sitPart`` is dropped too;
  - ``spiDec1`` / ``spiDec2`` are added from the rows of the same situation (same
    ``foyer``, ``annrev``, ``rang``): an SPI goes to the declarant whose birth name and
    birth date match the production store's ``person`` row of that SPI; when only one
    SPI and one declarant are left, they go together (a single declarant's one row); an
    SPI that cannot be placed is left out rather than guessed;
  - ``dateDebutPeriode`` / ``dateFinPeriode``: the whole year (``annrev``-01-01,
    ``annrev``-12-31), since the old records carry no period; ``typeAvis`` 1 (initial
    notice). A later extract with the right values replaces them.
- Notices (``ir_situation.facture``): a ``null`` column is dropped.
- IFI (``ifi_situation.record``): only ``indicateurIfiIsf`` is kept
  (``patrimoineNetTaxable`` and ``montantIfi`` are not the provider's).
- Housing-tax headings (``th_avis.record``): every ``null`` is dropped.

A value already in the new shape is left as it is, so running the conversion twice
changes nothing. **Downgrade is impossible** (the old shapes are not kept): it raises;
restore a backup taken before the upgrade instead.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SANDBOX_TABLES = ("th_local", "th_avis", "ifi_situation", "ir_situation", "person")
NULLABLE = frozenset({"rfr", "sitFam", "sitParIso", "revenuBrutGlobal"})
SIT_PART = (
    "sitPartP",
    "sitPartF",
    "sitPartW",
    "sitComb",
    "pensVeufGuerre",
    "indEnfSeul5ansMin",
    "indNonSeul",
)
# New member ← the old boxes it comes from (none: always "0").
_SIT_PART_FROM: dict[str, tuple[str, ...]] = {
    "sitPartP": ("caseP",),
    "sitPartF": ("caseF",),
    "sitPartW": ("caseW", "caseS"),
    "sitComb": (),
    "pensVeufGuerre": ("caseG",),
    "indEnfSeul5ansMin": ("caseL",),
    "indNonSeul": (),
}
_CHUNK = 500

_ir = sa.table(
    "ir_situation",
    sa.column("store", sa.String()),
    sa.column("spi", sa.String()),
    sa.column("annrev", sa.Integer()),
    sa.column("rang", sa.Integer()),
    sa.column("foyer", sa.String()),
    sa.column("record", sa.JSON()),
    sa.column("facture", sa.JSON()),
)
_ifi = sa.table(
    "ifi_situation",
    sa.column("store", sa.String()),
    sa.column("spi", sa.String()),
    sa.column("annrev", sa.Integer()),
    sa.column("record", sa.JSON()),
)
_th_avis = sa.table(
    "th_avis",
    sa.column("store", sa.String()),
    sa.column("spi", sa.String()),
    sa.column("annee", sa.Integer()),
    sa.column("avis", sa.String()),
    sa.column("record", sa.JSON()),
)
_person = sa.table(
    "person",
    sa.column("store", sa.String()),
    sa.column("spi", sa.String()),
    sa.column("nom_naissance", sa.String()),
    sa.column("date_naissance", sa.Date()),
)


# --- the conversions (pure functions) ----------------------------------------------------


def drop_nulls(value: Any) -> Any:
    """``value`` without any ``null`` member, at any depth."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value if v is not None]
    return value


def flag(value: Any) -> str:
    """An old indicator (0/1, a boolean, ``"1"``, ``"O"``…) as the provider's ``"0"``/``"1"``."""
    if isinstance(value, str):
        return "1" if value.strip().upper() in {"1", "O", "OUI", "X", "TRUE"} else "0"
    return "1" if value else "0"


def sit_par_declaree(old: dict[str, Any]) -> dict[str, str]:
    """The old ``case*`` boxes as ``SitPartJAXBbean`` (mapping in the module's docstring)."""
    if any(key in old for key in SIT_PART):  # already the provider's
        return {key: flag(old[key]) for key in SIT_PART if old.get(key) is not None}
    return {
        new: "1" if any(flag(old.get(box)) == "1" for box in boxes) else "0"
        for new, boxes in _SIT_PART_FROM.items()
    }


def convert_ir(
    record: dict[str, Any], annrev: int, spi_dec1: str | None, spi_dec2: str | None
) -> dict[str, Any]:
    """An old IR record in the provider's shape (see the module's docstring)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if value is None:
            if key in NULLABLE:
                out[key] = None
            continue
        out[key] = drop_nulls(value)
    for key in ("indDeficit", "indOptionImpotSepar"):
        if key in out:
            out[key] = flag(out[key])
    if "sitParDeclaree" in out:
        old = out["sitParDeclaree"]
        if isinstance(old, dict):
            out["sitParDeclaree"] = sit_par_declaree(old)
        else:
            del out["sitParDeclaree"]
    if out.get("sitPart") == "":
        del out["sitPart"]
    if spi_dec1 is not None:
        out.setdefault("spiDec1", spi_dec1)
    if spi_dec2 is not None:
        out.setdefault("spiDec2", spi_dec2)
    out.setdefault("dateDebutPeriode", f"{annrev:04d}-01-01")
    out.setdefault("dateFinPeriode", f"{annrev:04d}-12-31")
    out.setdefault("typeAvis", 1)
    return out


def convert_ifi(record: dict[str, Any]) -> dict[str, Any]:
    """Only the provider's ``indicateurIfiIsf``."""
    value = record.get("indicateurIfiIsf")
    return {} if value is None else {"indicateurIfiIsf": value}


def _name(value: Any) -> str:
    """A name compared as the provider writes it: capitals, no accent, single spaces."""
    text = unicodedata.normalize("NFKD", str(value))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(text.upper().replace("-", " ").split())


def _birth_date(record: dict[str, Any], n: int) -> str | None:
    date = record.get(f"dateNaisDec{n}")
    if not isinstance(date, dict):
        return None
    try:
        return f"{int(date['annee']):04d}-{int(date['mois']):02d}-{int(date['jour']):02d}"
    except (KeyError, TypeError, ValueError):
        return None


def declarant_spis(
    record: dict[str, Any], spis: Sequence[str], persons: dict[str, tuple[str, str]]
) -> tuple[str | None, str | None]:
    """(spiDec1, spiDec2) of a situation whose rows are under ``spis``; ``persons`` gives
    each SPI's (birth name, birth date AAAA-MM-JJ). An SPI that cannot be placed is left
    out."""
    described = [
        n for n in (1, 2) if record.get(f"nmNaiDec{n}") is not None or _birth_date(record, n)
    ]
    slots = described or ([1] if len(spis) == 1 else [1, 2])
    placed: dict[int, str] = {}
    for n in slots:
        name, born = record.get(f"nmNaiDec{n}"), _birth_date(record, n)
        if name is None or born is None:
            continue
        matches = [
            spi
            for spi in spis
            if spi in persons and persons[spi] == (_name(name), born) and spi not in placed.values()
        ]
        if len(matches) == 1:
            placed[n] = matches[0]
    free_slots = [n for n in slots if n not in placed]
    free_spis = [spi for spi in spis if spi not in placed.values()]
    if len(free_slots) == 1 and len(free_spis) == 1:
        placed[free_slots[0]] = free_spis[0]
    return placed.get(1), placed.get(2)


# --- the migration ---------------------------------------------------------------------


def _pages(
    bind: sa.Connection, table: sa.TableClause, keys: Sequence[str], *columns: str
) -> Iterator[list[sa.Row[Any]]]:
    """The production rows of ``table`` in pages, in key order (keyset pagination: the
    updates of one page do not disturb the reading of the next)."""
    key_columns = [table.c[k] for k in keys]
    selected = [*key_columns, *(table.c[c] for c in columns)]
    last: tuple[Any, ...] | None = None
    while True:
        query = sa.select(*selected).where(table.c.store == "production")
        if last is not None:
            query = query.where(sa.tuple_(*key_columns) > sa.tuple_(*last))
        page = list(bind.execute(query.order_by(*key_columns).limit(_CHUNK)))
        if not page:
            return
        yield page
        last = tuple(page[-1][: len(keys)])


def _update(
    bind: sa.Connection,
    table: sa.TableClause,
    keys: Sequence[str],
    values: dict[str, Callable[[sa.Row[Any]], Any]],
    page: list[sa.Row[Any]],
) -> None:
    statement = (
        table.update()
        .where(table.c.store == "production", *(table.c[k] == sa.bindparam(f"k_{k}") for k in keys))
        .values({name: sa.bindparam(f"v_{name}", type_=sa.JSON()) for name in values})
    )
    params = [
        {f"k_{k}": row._mapping[k] for k in keys}
        | {f"v_{name}": compute(row) for name, compute in values.items()}
        for row in page
    ]
    bind.execute(statement, params)


def _convert_ir(bind: sa.Connection) -> None:
    spis_of: dict[tuple[str, int, int], list[str]] = {}
    for row in bind.execute(
        sa.select(_ir.c.spi, _ir.c.annrev, _ir.c.rang, _ir.c.foyer).where(
            _ir.c.store == "production"
        )
    ):
        spis_of.setdefault((row.foyer, row.annrev, row.rang), []).append(row.spi)
    persons = {
        row.spi: (_name(row.nom_naissance), str(row.date_naissance)[:10])
        for row in bind.execute(
            sa.select(_person.c.spi, _person.c.nom_naissance, _person.c.date_naissance).where(
                _person.c.store == "production"
            )
        )
    }

    def record(row: sa.Row[Any]) -> dict[str, Any]:
        old = row.record if isinstance(row.record, dict) else {}
        spis = sorted(spis_of.get((row.foyer, row.annrev, row.rang), [row.spi]))
        return convert_ir(old, row.annrev, *declarant_spis(old, spis, persons))

    def facture(row: sa.Row[Any]) -> Any:
        return None if row.facture is None else drop_nulls(row.facture)

    keys = ("spi", "annrev", "rang")
    for page in _pages(bind, _ir, keys, "foyer", "record", "facture"):
        _update(bind, _ir, keys, {"record": record, "facture": facture}, page)


def upgrade() -> None:
    bind = op.get_bind()
    for name in _SANDBOX_TABLES:
        table = sa.table(name, sa.column("store", sa.String()))
        bind.execute(table.delete().where(table.c.store == "sandbox"))
    _convert_ir(bind)
    for page in _pages(bind, _ifi, ("spi", "annrev"), "record"):
        _update(
            bind,
            _ifi,
            ("spi", "annrev"),
            {"record": lambda row: convert_ifi(row.record or {})},
            page,
        )
    for page in _pages(bind, _th_avis, ("spi", "annee", "avis"), "record"):
        _update(
            bind,
            _th_avis,
            ("spi", "annee", "avis"),
            {"record": lambda row: drop_nulls(row.record or {})},
            page,
        )


def downgrade() -> None:
    raise RuntimeError(
        "La migration 0010 est irréversible : les enregistrements ont été convertis aux "
        "formes du fournisseur et les anciennes formes ne sont pas conservées. Restaurez "
        "une sauvegarde prise avant la mise à jour."
    )

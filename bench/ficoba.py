"""Benchmark: the FICOBA searches at the scale of a national file, under concurrent load.

Seeds a temporary database (SQLite in a temporary directory, or a throwaway PostgreSQL
server like the tests') with N accounts — synthetic persons, their accounts, deceased
holders and legal persons, from ``guichet.sandbox.ficoba``, in batches — through the
migrations' schema (trigram indexes on PostgreSQL), then runs each of the eleven search
types of the provider's document with ``--concurrency`` threads, each call its own
session, for at most ``--seconds`` or ``--calls`` calls per type, and prints p50/p99 per
type.

    python -m bench.ficoba [--backend sqlite|postgres] [--accounts N] [--concurrency 1,8]
                           [--seconds 5] [--calls 2000] [--only TYPE] [--explain]
                           [--keep | --database URL]

Default scale: 1 000 000 accounts on SQLite, 10 000 000 on PostgreSQL. ``--keep`` leaves
the throwaway PostgreSQL running after the run (its URL printed); ``--database URL``
measures such a database again (migrations applied first, criteria drawn from its rows)
without seeding; ``--explain`` prints, for one call of each type, the
``EXPLAIN (ANALYZE, BUFFERS)`` of every statement it runs (PostgreSQL).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, func, literal, select, tablesample, text
from sqlalchemy.orm import Session, sessionmaker
from tests.support.postgres import PostgresServer

from guichet.db import make_engine, make_sessionmaker
from guichet.db.migrate import upgrade
from guichet.records import ficoba_search as fs
from guichet.records.ficoba import (
    NATURE_LIVRET_A,
    FicobaCompte,
    FicobaDetention,
    FicobaPersonneMorale,
    FicobaPersonnePhysique,
)
from guichet.sandbox import ficoba

STORE = "sandbox"
YEAR = 2026
ACCOUNTS_PER_PERSON = 3.6  # what the generator gives, legal persons' accounts included
BATCH_PERSONS = 50_000
SAMPLES = 400  # cases kept per kind, drawn from the data


@dataclass
class Cases:
    """Search criteria drawn from the data written, so every search finds something."""

    natural: list[dict[str, Any]] = field(default_factory=list)
    legal: list[dict[str, Any]] = field(default_factory=list)
    associations: list[dict[str, Any]] = field(default_factory=list)  # they hold Livrets A
    natural_accounts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    legal_accounts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def keep(self, bank_file: ficoba.BankFile, rng: random.Random) -> None:
        pp = bank_file.personnes_physiques
        pm = bank_file.personnes_morales
        for row in rng.sample(pp, min(SAMPLES // 4, len(pp))):
            self.natural.append(row)
        for row in rng.sample(pm, min(SAMPLES // 4, len(pm))):
            self.legal.append(row)
        associations = [r for r in pm if r["categorie_juridique"] == "9220"]
        self.associations += rng.sample(associations, min(SAMPLES // 8, len(associations)))
        pp_by_id = {r["id"]: r for r in pp}
        pm_by_id = {r["id"]: r for r in pm}
        accounts = {r["id"]: r for r in bank_file.comptes if r["iban"]}
        holdings = [d for d in bank_file.detentions if d["qualite"] == "TIT"]
        for d in rng.sample(holdings, min(SAMPLES, len(holdings))):
            account = accounts.get(d["compte_id"])
            if account is None:
                continue
            if d["personne_physique_id"] in pp_by_id:
                self.natural_accounts.append((account["iban"], pp_by_id[d["personne_physique_id"]]))
            elif d["personne_morale_id"] in pm_by_id:
                self.legal_accounts.append((account["iban"], pm_by_id[d["personne_morale_id"]]))


def cases_from_database(engine: Engine, seed_value: int) -> Cases:
    """Criteria drawn from the rows of an already seeded database (``--database``): a
    sample of each table (PostgreSQL's ``TABLESAMPLE``, SQLite's ``random()``)."""
    postgres = engine.dialect.name == "postgresql"
    P, M, C, D = (
        model.__table__
        for model in (FicobaPersonnePhysique, FicobaPersonneMorale, FicobaCompte, FicobaDetention)
    )

    def some(table: Any, n: int, *where: Any) -> list[dict[str, Any]]:
        source = tablesample(table, func.system(2), seed=literal(seed_value)) if postgres else table
        statement = select(source).where(source.c.store == STORE, *(w(source) for w in where))
        if not postgres:
            statement = statement.order_by(func.random())
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(statement.limit(n)).mappings()]

    cases = Cases(
        natural=some(P, SAMPLES // 4),
        legal=some(M, SAMPLES // 4),
        associations=some(M, SAMPLES // 8, lambda t: t.c.categorie_juridique == "9220"),
    )
    titles = some(D, SAMPLES, lambda t: t.c.qualite == "TIT") + some(
        D,
        SAMPLES // 4,
        lambda t: t.c.qualite == "TIT",
        lambda t: t.c.personne_morale_id.is_not(None),
    )
    with engine.connect() as conn:
        ibans: dict[int, str] = {
            account: iban
            for account, iban in conn.execute(
                select(C.c.id, C.c.iban).where(
                    C.c.store == STORE,
                    C.c.id.in_([t["compte_id"] for t in titles]),
                    C.c.iban.is_not(None),
                )
            )
        }
        persons = {
            kind: {
                r["id"]: dict(r)
                for r in conn.execute(
                    select(table).where(
                        table.c.store == STORE,
                        table.c.id.in_([t[column] for t in titles if t[column] is not None]),
                    )
                ).mappings()
            }
            for kind, table, column in (
                ("pp", P, "personne_physique_id"),
                ("pm", M, "personne_morale_id"),
            )
        }
    for t in titles:
        iban = ibans.get(t["compte_id"])
        if iban is None:
            continue
        if t["personne_physique_id"] is not None:
            cases.natural_accounts.append((iban, persons["pp"][t["personne_physique_id"]]))
        else:
            cases.legal_accounts.append((iban, persons["pm"][t["personne_morale_id"]]))
    return cases


def _etat_civil(row: dict[str, Any], *, full_date: bool) -> fs.NaturalPersonCriteria:
    born = row["date_naissance"]
    date = {"anneeNaissance": str(born.year)}
    if full_date:
        date |= {"moisNaissance": f"{born.month:02d}", "jourNaissance": f"{born.day:02d}"}
    return fs.NaturalPersonCriteria.from_provider(
        {"nom": row["nom_usage"] or row["nom_naissance"], "prenoms": row["prenoms"].split()[0]}
        | date
    )


def _searches(cases: Cases) -> dict[str, Callable[[Session, int], object]]:
    """One callable per search type of seed 002: (session, i) → a search on case i."""
    natural, legal, associations = cases.natural, cases.legal, cases.associations
    nat_acc, leg_acc = cases.natural_accounts, cases.legal_accounts

    def pick(items: list[Any], i: int) -> Any:
        return items[i % len(items)]

    return {
        "personne physique (perPhy)": lambda s, i: fs.search_natural_persons(
            s, STORE, _etat_civil(pick(natural, i), full_date=i % 2 == 0)
        ),
        "personne morale (perPro)": lambda s, i: fs.search_legal_persons(
            s, STORE, fs.LegalPersonCriteria(raison_sociale=pick(legal, i)["raison_sociale"])
        ),
        "compte (numCpte)": lambda s, i: fs.search_by_iban(s, STORE, pick(nat_acc, i)[0]),
        "SIREN/SIRET (siretSiren)": lambda s, i: fs.search_by_siret_siren(
            s,
            STORE,
            **({"siret": pick(legal, i)["siret"]} if i % 2 else {"siren": pick(legal, i)["siren"]}),
        ),
        "SPI (spi)": lambda s, i: fs.search_by_spi(
            s, STORE, pick([r for r in natural if r["spi"]], i)["spi"]
        ),
        "vérification IBAN PP": lambda s, i: fs.verify_iban_natural_person(
            s, STORE, pick(nat_acc, i)[0], _etat_civil(pick(nat_acc, i)[1], full_date=True)
        ),
        "vérification IBAN PM": lambda s, i: fs.verify_iban_legal_person(
            s,
            STORE,
            pick(leg_acc, i)[0],
            fs.LegalPersonCriteria(raison_sociale=pick(leg_acc, i)[1]["raison_sociale"]),
        ),
        "vérification IBAN SIRET": lambda s, i: fs.verify_iban_siret(
            s, STORE, pick(leg_acc, i)[0], siret=pick(leg_acc, i)[1]["siret"]
        ),
        "multi-détention PP": lambda s, i: fs.multi_holding_natural_person(
            s, STORE, _etat_civil(pick(natural, i), full_date=True), NATURE_LIVRET_A
        ),
        "multi-détention PM": lambda s, i: fs.multi_holding_legal_person(
            s,
            STORE,
            fs.LegalPersonCriteria(
                raison_sociale=pick(associations, i)["raison_sociale"],
                adresse=fs.AddressCriteria(
                    departement=pick(associations, i)["adr_code_departement"],
                    commune=pick(associations, i)["adr_code_commune"],
                ),
            ),
            NATURE_LIVRET_A,
        ),
        "multi-détention SIRET": lambda s, i: fs.multi_holding_siret(
            s, STORE, siret=pick(associations, i)["siret"], nature=NATURE_LIVRET_A
        ),
    }


# --- seeding ---------------------------------------------------------------------------------


def _copy(engine: Engine, bank_file: ficoba.BankFile, reference: bool) -> None:
    """PostgreSQL: ``COPY`` the batch (the reference tables through SQLAlchemy)."""
    if reference:
        with make_sessionmaker(engine)() as s, s.begin():
            ficoba.insert_bank_file(
                s,
                ficoba.BankFile(
                    bank_file.store,
                    etablissements=bank_file.etablissements,
                    guichets=bank_file.guichets,
                ),
            )
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for model, attribute in ficoba.TABLES[2:]:
            columns = [c.name for c in model.__table__.columns]
            rows = getattr(bank_file, attribute)
            statement = f"COPY {model.__tablename__} ({', '.join(columns)}) FROM STDIN"
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])
        raw.commit()
    finally:
        raw.close()


def seed(engine: Engine, accounts: int, seed_value: int) -> tuple[Cases, dict[str, int]]:
    persons = max(1_000, round(accounts / ACCOUNTS_PER_PERSON))
    rng = random.Random(seed_value)
    cases = Cases()
    offsets: ficoba.Offsets | None = None
    factory = make_sessionmaker(engine)
    postgres = engine.dialect.name == "postgresql"
    started = time.perf_counter()
    done = written = 0
    for batch in itertools.count():
        if done >= persons:
            break
        size = min(BATCH_PERSONS, persons - done)
        people = ficoba.synthetic_persons(size, seed=seed_value, reference_year=YEAR, start=done)
        bank_file = ficoba.generate_bank_file(
            people,
            seed=seed_value + batch,
            reference_year=YEAR,
            store=STORE,
            with_personas=False,
            start=offsets,
        )
        if postgres:
            _copy(engine, bank_file, reference=offsets is None)
        else:
            with factory() as s, s.begin():
                ficoba.insert_bank_file(s, bank_file, reference=offsets is None)
        cases.keep(bank_file, rng)
        written += len(bank_file.personnes_physiques)
        offsets = bank_file.next
        done += size
        print(
            f"  … {offsets.comptes:,} comptes, {written:,} personnes physiques, "
            f"{offsets.personnes_morales:,} établissements "
            f"({time.perf_counter() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    # The steady state: statistics, and on PostgreSQL the GIN indexes' pending lists
    # flushed (bulk loads leave them there, and every search would scan them).
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if postgres else "ANALYZE")
    assert offsets is not None
    counts = {
        "comptes": offsets.comptes,
        "personnes physiques": written,
        "établissements": offsets.personnes_morales,
        "détentions": offsets.detentions,
        "secondes": round(time.perf_counter() - started),
    }
    return cases, counts


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            label: int(conn.scalar(select(func.count()).select_from(model)) or 0)
            for label, model in (
                ("comptes", FicobaCompte),
                ("personnes physiques", FicobaPersonnePhysique),
                ("établissements", FicobaPersonneMorale),
                ("détentions", FicobaDetention),
            )
        }


# --- load ---------------------------------------------------------------------------------------


@dataclass
class Result:
    calls: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    rate: float
    empty: int


def _empty(found: object) -> bool:
    """No answer: nothing found, no account, or an IBAN check that does not concord."""
    if found is None or found == []:
        return True
    if isinstance(found, fs.MultiHolding):
        return not found.comptes
    return isinstance(found, fs.IbanCheck) and not found.concordant


def _run(
    factory: sessionmaker[Session],
    search: Callable[[Session, int], object],
    *,
    concurrency: int,
    seconds: float,
    calls: int,
) -> Result:
    counter = itertools.count()
    latencies: list[float] = []
    empty = 0
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker() -> None:
        nonlocal empty
        while time.perf_counter() < deadline:
            i = next(counter)
            if i >= calls:
                return
            t0 = time.perf_counter()
            with factory() as session:
                found = search(session, i)
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed)
                empty += _empty(found)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(worker) for _ in range(concurrency)]:
            future.result()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return Result(
        len(ordered),
        statistics.median(ordered) * 1000,
        p99 * 1000,
        ordered[-1] * 1000,
        len(ordered) / wall,
        empty,
    )


def _warm(
    factory: sessionmaker[Session], searches: dict[str, Callable[[Session, int], object]]
) -> None:
    for search in searches.values():
        for i in range(5):
            with factory() as s:
                search(s, i)


@dataclass
class _Database:
    engine: Engine
    cleanup: Callable[[], None]


def _database(backend: str, *, keep: bool = False, url: str | None = None) -> _Database:
    if url is not None:
        engine = make_engine(url)
        return _Database(engine, engine.dispose)
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="guichet-ficoba-"))
        engine = make_engine(f"sqlite:///{folder / 'ficoba.db'}")

        def drop() -> None:
            engine.dispose()
            shutil.rmtree(folder, ignore_errors=True)

        return _Database(engine, drop)
    server = PostgresServer().start()
    try:
        engine = make_engine(server.create_database("ficoba"))  # 30 connections at most
    except BaseException:
        server.stop()
        raise

    def stop() -> None:
        engine.dispose()
        if keep:
            print(
                f"PostgreSQL gardé : --database {engine.url.render_as_string(False)} "
                f"(répertoire {server.dir}, processus {server.proc.pid if server.proc else '?'})",
                file=sys.stderr,
            )
        else:
            server.stop()

    return _Database(engine, stop)


def explain(
    factory: sessionmaker[Session], searches: dict[str, Callable[[Session, int], object]]
) -> None:
    """For one call of each type: every statement it runs, with PostgreSQL's
    ``EXPLAIN (ANALYZE, BUFFERS)`` (the statement is run again, alone)."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    for name, search in searches.items():
        captured.clear()

        with factory() as session:
            engine = session.get_bind()
            event.listen(engine, "before_cursor_execute", capture)
            try:
                search(session, 1)
            finally:
                event.remove(engine, "before_cursor_execute", capture)
        print(f"\n=== {name}: {len(captured)} requête(s)")
        with factory() as session:
            raw = session.connection().connection.driver_connection
            assert raw is not None
            for statement, parameters in captured:
                print(f"--- {' '.join(statement.split())[:400]}")
                print(f"    {parameters!r}"[:400])
                with raw.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                    for (line,) in cursor.fetchall():
                        print(f"    {line}")


def _database_size(engine: Engine) -> str:
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            return str(
                conn.scalar(text("SELECT pg_size_pretty(pg_database_size(current_database()))"))
            )
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar() or 0
        size = conn.exec_driver_sql("PRAGMA page_size").scalar() or 0
        return f"{pages * size / 2**20:.0f} MB"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--accounts", type=int, help="comptes à générer (1 000 000 SQLite, 10 000 000 PostgreSQL)"
    )
    parser.add_argument(
        "--concurrency",
        default="1,8",
        help="appels simultanés ; plusieurs niveaux séparés par des virgules (1,8)",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="durée maximale par type")
    parser.add_argument("--calls", type=int, default=2_000, help="appels maximum par type")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--only", help="seulement les types de recherche dont le nom contient ce texte"
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="afficher EXPLAIN (ANALYZE, BUFFERS) des requêtes d'un appel de chaque type",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="laisser tourner le PostgreSQL jetable après la mesure (son URL est affichée)",
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="mesurer une base déjà chargée (--keep) au lieu d'en charger une",
    )
    parser.add_argument(
        "--wait-for",
        type=Path,
        metavar="FICHIER",
        help="après le chargement, attendre que ce fichier existe avant de mesurer "
        "(charger pendant que la machine sert à autre chose, mesurer une fois libre)",
    )
    args = parser.parse_args(argv)
    accounts = args.accounts or (1_000_000 if args.backend == "sqlite" else 10_000_000)
    database = _database(args.backend, keep=args.keep, url=args.database)
    try:
        upgrade(database.engine)
        if args.database:
            cases, counts = (
                cases_from_database(database.engine, args.seed),
                _counts(database.engine),
            )
        else:
            print(f"FICOBA — {args.backend}, {accounts:,} comptes demandés", file=sys.stderr)
            cases, counts = seed(database.engine, accounts, args.seed)
        if args.wait_for is not None:
            print(f"chargé ; mesure dès que {args.wait_for} existe", file=sys.stderr, flush=True)
            while not args.wait_for.exists():
                time.sleep(5)
        factory = make_sessionmaker(database.engine)
        searches = {
            name: search
            for name, search in _searches(cases).items()
            if not args.only or args.only.lower() in name.lower()
        }
        _warm(factory, searches)
        if args.explain and database.engine.dialect.name == "postgresql":
            explain(factory, searches)
        elif args.explain:
            print("--explain : PostgreSQL seulement", file=sys.stderr)
        levels = [int(level) for level in str(args.concurrency).split(",") if level.strip()]
        print(f"\nFICOBA — {args.backend}: " + ", ".join(f"{v:,} {k}" for k, v in counts.items()))
        print(
            f"base : {_database_size(database.engine)} ; au plus {args.seconds:g} s "
            f"ou {args.calls} appels par type et par niveau"
        )
        for level in levels:
            print(f"\n{level} appel(s) simultané(s)")
            print(
                f"{'type de recherche':<30} {'appels':>7} {'/s':>7} {'p50 ms':>8} "
                f"{'p99 ms':>8} {'max ms':>8} {'vides':>6}"
            )
            for name, search in searches.items():
                r = _run(factory, search, concurrency=level, seconds=args.seconds, calls=args.calls)
                print(
                    f"{name:<30} {r.calls:>7} {r.rate:>7.0f} {r.p50_ms:>8.2f} "
                    f"{r.p99_ms:>8.2f} {r.max_ms:>8.1f} {r.empty:>6}",
                    flush=True,
                )
    finally:
        database.cleanup()


if __name__ == "__main__":
    main()

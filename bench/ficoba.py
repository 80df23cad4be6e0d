"""Benchmark: the FICOBA searches at the scale of a national file, under concurrent load.

Seeds a temporary database (SQLite in a temporary directory, or a throwaway PostgreSQL
server like the tests') with N accounts — synthetic persons, their accounts, deceased
holders and legal persons, from ``guichet.sandbox.ficoba``, in batches — through the
migrations' schema (trigram indexes on PostgreSQL), then runs each of the eleven search
types of the provider's document with ``--concurrency`` threads, each call its own
session, for at most ``--seconds`` or ``--calls`` calls per type, and prints p50/p99 per
type.

    python -m bench.ficoba [--backend sqlite|postgres] [--accounts N] [--concurrency 1,8]
                           [--seconds 5] [--calls 2000]

Default scale: 1 000 000 accounts on SQLite, 10 000 000 on PostgreSQL.
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

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker
from tests.support.postgres import PostgresServer

from guichet.db import make_engine, make_sessionmaker
from guichet.db.migrate import upgrade
from guichet.records import ficoba_search as fs
from guichet.records.ficoba import NATURE_LIVRET_A
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


def _database(backend: str) -> _Database:
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
        server.stop()

    return _Database(engine, stop)


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
    args = parser.parse_args(argv)
    accounts = args.accounts or (1_000_000 if args.backend == "sqlite" else 10_000_000)
    database = _database(args.backend)
    try:
        upgrade(database.engine)
        print(f"FICOBA — {args.backend}, {accounts:,} comptes demandés", file=sys.stderr)
        cases, counts = seed(database.engine, accounts, args.seed)
        factory = make_sessionmaker(database.engine)
        searches = _searches(cases)
        _warm(factory, searches)
        levels = [int(level) for level in str(args.concurrency).split(",")]
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

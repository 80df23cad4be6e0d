"""Environment isolation (issue 12 §3): the production records live in a database of their
own, which only the production gateway (and the import command) opens; the sandbox gateway
reads the main database, which holds no production record — a data directory made before
the split gets its production rows moved there by ``guichet init``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

import guichet.cli as cli
from guichet.habilitation.models import Environment
from guichet.platform import Platform
from guichet.preflight import check_serving
from guichet.records.models import Person
from guichet.records.r2p_importer import import_r2p
from guichet.runtime import open_runtime
from guichet.settings import Settings, use_settings
from guichet.startup import StartupError
from tests.conftest import BACKENDS
from tests.support.postgres import PostgresServer
from tests.unit.gateway.support import World, open_world

SPI = "1234567890066"  # in no sandbox seed
PRODUCTION_ONLY = "2345678901342"


def _person(spi: str) -> dict[str, Any]:
    return {
        "spi": spi,
        "sexe": "F",
        "nomNaissance": "LEFEVRE",
        "prenoms": "MARIE",
        "dateNaissance": "1980-05-12",
        "codePaysNaissance": "99100",
        "codeDepartementNaissance": "16",
        "codeCommuneNaissance": "16015",
        "adresse": {"cdPays": "99100", "lbPays": "FRANCE"},
    }


def _count(session_factory: sessionmaker[Session], store: str) -> int:
    with session_factory() as session:
        return int(
            session.scalar(select(func.count()).select_from(Person).where(Person.store == store))
            or 0
        )


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    postgres = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    with open_world(request.param, tmp_path_factory.mktemp("isolation"), postgres) as world:
        yield world


def test_each_gateway_reads_its_own_environments_records(world: World, tmp_path: Path) -> None:
    production = world.runtime.records("production")
    assert production is not world.runtime.session_factory
    extract = tmp_path / "r2p.jsonl"
    extract.write_text(json.dumps(_person(SPI)) + "\n", encoding="utf-8")
    import_r2p(production, extract)
    # A production row left in the main database is what the sandbox gateway and the portal
    # could read: the production gateway does not read it there either.
    with world.runtime.session_factory() as session, session.begin():
        session.add(
            Person(
                store="production",
                spi=PRODUCTION_ONLY,
                sexe="M",
                nom_naissance="DUPONT",
                nom_usage=None,
                prenoms="JEAN",
                date_naissance=dt.date(1970, 1, 1),
                code_pays_naissance="99100",
                code_dept_naissance="75",
                code_commune_naissance="75118",
                lieu_naissance=None,
                adresse={"cdPays": "99100"},
                communicable=True,
            )
        )
    assert _count(world.runtime.session_factory, "production") == 1
    try:
        partner = world.partner(environment=Environment.PRODUCTION)
        app = world.apps[Environment.PRODUCTION]
        token = world.token(partner, app=app)
        r = world.get(f"/r2p/v1/personne/{SPI}", token=token, cert=partner.cert_pem, app=app)
        assert r.status_code == 200, r.text
        assert r.json()["personnePhysique"]["etatCivil"]["lbNomNaissance"] == "LEFEVRE"
        r = world.get(
            f"/r2p/v1/personne/{PRODUCTION_ONLY}", token=token, cert=partner.cert_pem, app=app
        )
        assert r.status_code == 404, r.text
        # The sandbox gateway knows neither.
        sandbox = world.default
        assert sandbox is not None
        sandbox_token = world.token(sandbox)
        for spi in (SPI, PRODUCTION_ONLY):
            r = world.get(f"/r2p/v1/personne/{spi}", token=sandbox_token, cert=sandbox.cert_pem)
            assert r.status_code == 404, r.text
    finally:
        with world.runtime.session_factory() as session, session.begin():
            session.query(Person).filter(Person.store == "production").delete()


def test_the_sandbox_gateway_never_opens_the_production_database(
    world: World, tmp_path: Path
) -> None:
    """A process serving the sandbox is not even given the production store: it never
    connects there (its URL, on a real deployment, is not in its environment)."""
    records = tmp_path / "production-records.db"
    settings = world.runtime.settings.model_copy(
        update={"production_records_url": f"sqlite:///{records}"}
    )
    runtime = dataclasses.replace(
        world.runtime, settings=settings, _records={}, _records_engines=[]
    )
    platform = Platform(runtime)
    platform.gateway_app(Environment.SANDBOX)
    platform.portal_app()
    assert not records.exists()
    platform.gateway_app(Environment.PRODUCTION)
    assert records.exists()
    runtime.close = lambda: None  # type: ignore[method-assign]  # the world's engine stays
    for engine in runtime._records_engines:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def fresh_urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Two empty databases: the main one and the production records' one."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'main.db'}", f"sqlite:///{tmp_path / 'production.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = uuid.uuid4().hex[:10]
    return server.create_database(f"iso_{name}"), server.create_database(f"isorec_{name}")


def test_init_moves_production_rows_out_of_the_main_database(
    tmp_path: Path, fresh_urls: tuple[str, str]
) -> None:
    """A data directory from before the split: serving is refused until ``guichet init``
    has moved its production records to their own database."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=fresh_urls[0],
        production_records_url=fresh_urls[1],
        secret_key="k" * 48,
    )
    # The sandbox gateway's settings: no production records' URL (it is not given it).
    sandbox = settings.model_copy(update={"production_records_url": None})
    use_settings(settings)
    try:
        runtime = open_runtime(settings)
        extract = tmp_path / "r2p.jsonl"
        extract.write_text(
            "\n".join(json.dumps(_person(s)) for s in (SPI, PRODUCTION_ONLY)), encoding="utf-8"
        )
        import_r2p(runtime.session_factory, extract)  # as an older version loaded it
        runtime.close()
        with pytest.raises(StartupError, match="contient encore des données de production"):
            check_serving(sandbox, "sandbox")
        result = CliRunner().invoke(cli.app, ["init", "--production", "--households", "3"])
        assert result.exit_code == 0, result.output
        assert "Données de production déplacées" in result.output
        assert "person 2" in result.output
        runtime = open_runtime(settings)
        try:
            assert _count(runtime.session_factory, "production") == 0
            assert _count(runtime.session_factory, "sandbox") > 0  # the sandbox stays
            assert _count(runtime.records("production"), "production") == 2
        finally:
            runtime.close()
        check_serving(sandbox, "sandbox")
        again = CliRunner().invoke(cli.app, ["init", "--production", "--households", "3"])
        assert again.exit_code == 0, again.output
        assert "déplacées" not in again.output
    finally:
        use_settings(None)

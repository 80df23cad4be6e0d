"""Every answer of API Impôt Particulier by SPI, for every persona and year, is the provider's
envelope and schema: no property the provider does not define, the provider's JSON types, and
a ``null`` only for the four values the convention declares nullable."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from guichet.apis.context import ApiDeps, ApiResponse, OperationHandler
from guichet.apis.impot_particulier import build_operations
from guichet.apis.impot_particulier.schemas import (
    IFI_ISF,
    IR_ASSIETTES,
    IR_FACTURES,
    IR_MILLESIME,
    IR_MULTI,
    OUVERTURE_LEP,
    SITUATION_TH,
    Schema,
)
from guichet.catalog.products import IMPOT_PARTICULIER, IR_DATA_SCOPES, Operation
from guichet.clock import FrozenClock
from guichet.db import make_engine, make_sessionmaker
from guichet.errors import Gone, NotFound
from guichet.sandbox import personas
from guichet.sandbox.population import seed
from guichet.schema import metadata
from tests.unit.apis.support import assert_conforms, context, habilitation, request

N = 2026
YEARS = (N - 1, N - 2, N - 3)


NOW = dt.datetime(N, 11, 23, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, OperationHandler]]:
    """The seeded sandbox, once for the module (SQLite: the shapes do not depend on it)."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('shapes') / 'guichet.db'}")
    metadata.create_all(engine)
    factory = make_sessionmaker(engine)
    seed(factory, households=3, reference_year=N)
    yield build_operations(ApiDeps(session_factory=factory, clock=FrozenClock(NOW)))
    engine.dispose()


def _envelope(name: str, body: Any) -> list[tuple[Any, Schema]]:
    """(object, its schema) for each object of ``name``'s answer, the envelope checked."""
    if name.startswith("ir_assiettes_multiple"):
        assert list(body) == ["situationsIR"]
        return [(item, IR_MULTI) for item in body["situationsIR"]]
    if name.startswith("th_principale"):
        assert list(body) == ["situationsTH"]
        return [(item, SITUATION_TH) for item in body["situationsTH"]]
    schema = {
        "ir_assiettes": IR_ASSIETTES,
        "ir_derniere_situation": IR_MILLESIME,
        "ir_derniere_situation_deuxans": IR_MILLESIME,
        "ir_factures": IR_FACTURES,
        "ifi_assiettes": IFI_ISF,
        "lep": OUVERTURE_LEP,
    }[name.rsplit("_", 1)[0]]
    return [(body, schema)]


def _path(name: str, spi: str, annrev: int) -> dict[str, str]:
    if name == "lep_spi":
        return {"spi": spi, "departement": "75", "annrev": str(annrev), "bareme": str(annrev + 1)}
    if "deuxans" in name:
        return {"spi": spi}
    return {"spi": spi, "annrev": str(annrev)}


def _call(op: OperationHandler, spi: str, name: str, annrev: int) -> ApiResponse | None:
    hab = habilitation(data_scopes=IR_DATA_SCOPES)
    ctx = context(NOW, hab)
    params = op.parse(request(_path(name, spi, annrev)))
    op.authorize(ctx, params)
    try:
        return asyncio.run(op.fetch(ctx, params))
    except (NotFound, Gone):
        return None


SPI_OPERATIONS = [o for o in IMPOT_PARTICULIER.operations if o.access_mode == "spi"]


@pytest.mark.parametrize("operation", SPI_OPERATIONS, ids=lambda o: o.name)
def test_every_answer_is_the_providers_schema(
    ops: dict[str, OperationHandler], operation: Operation
) -> None:
    served = 0
    for persona in personas.PERSONAS:
        for annrev in YEARS:
            response = _call(ops[operation.name], persona.spi, operation.name, annrev)
            if response is None:
                continue
            assert response.media_type == operation.media_type
            if response.status == 204:
                assert response.body is None
                continue
            served += 1
            for item, schema in _envelope(operation.name, response.body):
                assert_conforms(item, schema, where=f"{operation.name} {persona.spi} {annrev}")
    assert served  # the sandbox has something for every operation

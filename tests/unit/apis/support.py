"""Builds the call context an operation receives from the gateway, for operation tests."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from guichet.apis.context import CallContext
from guichet.apis.impot_particulier.schemas import NULLABLE, PAC, Schema
from guichet.habilitation.models import Environment, HabilitationStatus
from guichet.oauth.policy import HabilitationPolicy

ALL_YEARS = ("dgfip_annee_n_moins_1", "dgfip_annee_n_moins_2", "dgfip_annee_n_moins_3")


def habilitation(
    *,
    apis: Iterable[str] = ("impot_particulier", "r2p"),
    access_modes: Iterable[str] = ("spi",),
    data_scopes: Iterable[str] = ("dgfip_rfr", "dgfip_nbpart"),
    year_scopes: Iterable[str] = ALL_YEARS,
    environment: Environment = Environment.SANDBOX,
) -> HabilitationPolicy:
    return HabilitationPolicy(
        id=uuid.uuid4(),
        organisation_id=uuid.uuid4(),
        organisation_name="Ville de Test",
        environment=environment,
        demarche="Quotient familial",
        status=HabilitationStatus.ACTIVE,
        apis=frozenset(apis),
        access_modes=frozenset(access_modes),
        data_scopes=frozenset(data_scopes),
        year_scopes=frozenset(year_scopes),
        ip_ranges=(),
        quotas={},
        valid_from=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        valid_until=None,
        certificates={},
    )


def context(
    now: dt.datetime,
    hab: HabilitationPolicy | None,
    environment: Environment = Environment.SANDBOX,
) -> CallContext:
    return CallContext(
        environment=environment,
        correlation_id=str(uuid.uuid4()),
        source_ip="127.0.0.1",
        now=now,
        method="GET",
        path="/",
        habilitation=hab,
    )


def request(
    path_params: dict[str, Any] | None = None, query: dict[str, str] | None = None
) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [],
            "query_string": urlencode(query or {}).encode(),
            "path_params": path_params or {},
        }
    )


# --- the provider's schemas: what an answer may carry -----------------------------------

# Scalar properties of the provider's schemas that are JSON integers, or numbers; every
# other scalar property is a string [provider's OpenAPI, ``components.schemas``].
INTEGER_PROPERTIES = frozenset(
    {
        "annRevenu",
        "rfr",
        "pensAlPer",
        "revenuBrutGlobal",
        "mntRevbareme",
        "impAvImput",
        "montTotIr",
        "revImposable",
        "typeAvis",
        "numLigne",
        *PAC.properties,
    }
)
NUMBER_PROPERTIES = frozenset({"nbPart"})
# Properties that are objects; the other nested ones are arrays of objects.
OBJECT_PROPERTIES = frozenset(
    {"pac", "dateNaisDec1", "dateNaisDec2", "aftDetail", "sitParDeclaree", "rev"}
)


def assert_conforms(body: Any, schema: Schema, *, top: bool = True, where: str = "") -> None:
    """``body`` has only ``schema``'s properties, each of the provider's JSON type, and a
    ``null`` only for a ``NULLABLE`` property of the top level."""
    where = where or schema.name
    assert isinstance(body, dict), f"{where}: {body!r} is not an object"
    extra = set(body) - set(schema.properties)
    assert not extra, f"{where}: properties the provider does not define: {sorted(extra)}"
    for name, value in body.items():
        at = f"{where}.{name}"
        if value is None:
            assert top, f"{at}: null below the top level"
            assert name in NULLABLE, f"{at}: null"
            continue
        sub = schema.nested.get(name)
        if sub is not None and name in OBJECT_PROPERTIES:
            assert isinstance(value, dict), f"{at}: {value!r} is not an object"
            assert_conforms(value, sub, top=False, where=at)
        elif sub is not None:  # an array of objects
            assert isinstance(value, list), f"{at}: {value!r} is not an array"
            for item in value:
                assert_conforms(item, sub, top=False, where=at)
        elif name in INTEGER_PROPERTIES:
            assert type(value) is int, f"{at}: {value!r} is not an integer"
        elif name in NUMBER_PROPERTIES:
            assert type(value) in (int, float), f"{at}: {value!r} is not a number"
        else:
            assert isinstance(value, str), f"{at}: {value!r} is not a string"

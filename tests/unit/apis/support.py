"""Builds the call context an operation receives from the gateway, for operation tests."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request

from guichet.gateway.context import CallContext
from guichet.gateway.policy import HabilitationPolicy
from guichet.habilitation.models import Environment, HabilitationStatus

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

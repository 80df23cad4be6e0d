"""API Impôt Particulier: the IR "assiettes", bill, IFI and principal housing-tax resources by
SPI and in FranceConnect mode, the LEP check by SPI, and the convention's OS1–OS9 contract."""

from __future__ import annotations

from collections.abc import Mapping

from guichet.apis.context import ApiDeps, OperationHandler
from guichet.apis.impot_particulier.franceconnect import (
    FranceConnectGate,
    build_franceconnect_operations,
)
from guichet.apis.impot_particulier.operations import build_operations as build_spi_operations
from guichet.apis.impot_particulier.os_contract import build_os_operations
from guichet.apis.impot_particulier.resources import build_resource_operations
from guichet.federation import checktoken
from guichet.federation.checktoken import FederationCheck
from guichet.habilitation.models import Environment
from guichet.settings import get_settings


def federation_checks(deps: ApiDeps) -> dict[Environment, FederationCheck]:
    """The configured federation (``federation_*`` settings), for the gateways listed in
    ``federation_environments`` (by default the sandbox only: a sandbox identity never
    unlocks production data)."""
    settings = get_settings()
    check = checktoken.from_settings(settings, deps.clock)
    return {Environment(name): check for name in settings.federation_environments}


def build_operations(
    deps: ApiDeps, federation: Mapping[Environment, FederationCheck] | None = None
) -> dict[str, OperationHandler]:
    """Every handler, keyed by the catalogue's operation names; FranceConnect-mode ones check
    tokens with ``federation`` (per environment), by default ``federation_checks(deps)``."""
    gate = FranceConnectGate(deps, federation_checks(deps) if federation is None else federation)
    return {
        **build_spi_operations(deps),
        **build_franceconnect_operations(deps, gate),
        **build_os_operations(deps, gate),
        **build_resource_operations(deps, gate),
    }


__all__ = ["build_operations", "federation_checks"]

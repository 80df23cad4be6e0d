"""FranceConnect mode and the scopes the federation can carry: a catalogue scope the
federation never issues is refused at validation when FranceConnect is the only access mode
(naming its field), and is neither required nor served by the FranceConnect-mode gate."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from guichet.apis.impot_particulier.franceconnect import CARRIED_RECORD_SCOPES
from guichet.apis.impot_particulier.operations import RECORD_SCOPES
from guichet.catalog.products import PRODUCTS
from guichet.federation.scopes import DATA_SCOPES
from guichet.habilitation.models import Environment
from guichet.habilitation.request_models import HabilitationRequest, RequestStatus
from guichet.habilitation.validation import validate_for_submission
from tests.unit.habilitation.support import CGU, complete_data

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC)
PRODUCT = PRODUCTS["impot_particulier"]
# Derived, not listed: whatever the catalogue offers that the federation cannot issue.
UNCARRIED = sorted(PRODUCT.data_scopes - DATA_SCOPES)
CARRIED = sorted(PRODUCT.data_scopes & DATA_SCOPES)


def _request(cert_pem: str, modes: list[str], scopes: list[str]) -> HabilitationRequest:
    data: dict[str, dict[str, Any]] = copy.deepcopy(complete_data(cert_pem))
    data["perimeter"]["access_modes"] = modes
    data["perimeter"]["data_scopes"] = {s: "Strictement nécessaire à la démarche." for s in scopes}
    data["perimeter"]["labels"] = {s: f"Donnée {s}" for s in scopes}
    data["technical"]["federation_client_id"] = "a" * 64
    for contact in data["contacts"].values():
        contact.setdefault("verified", True)  # what saving the block computes
    return HabilitationRequest(
        api="impot_particulier",
        environment=Environment.SANDBOX,
        status=RequestStatus.DRAFT,
        data=data,
        cgu_version=CGU,
        cgu_accepted_at=NOW,
    )


def _scope_errors(request: HabilitationRequest) -> dict[str, str]:
    return {
        e.field: e.message
        for e in validate_for_submission(request, now=NOW)
        if e.field.startswith("perimeter.")
    }


def test_the_catalogue_has_scopes_the_federation_cannot_carry() -> None:
    # The case this rule exists for (dgfip_montantimpot, dgfip_recouvrement…).
    assert {"dgfip_montantimpot", "dgfip_recouvrement", "dgfip_revimposable"} <= set(UNCARRIED)
    assert CARRIED_RECORD_SCOPES == RECORD_SCOPES & DATA_SCOPES


def test_franceconnect_alone_refuses_each_uncarried_scope_by_name(cert_pem: str) -> None:
    errors = _scope_errors(_request(cert_pem, ["franceconnect"], ["dgfip_rfr", *UNCARRIED]))
    assert set(errors) == {f"perimeter.data_scopes.{s}" for s in UNCARRIED}
    for scope in UNCARRIED:
        assert "FranceConnect" in errors[f"perimeter.data_scopes.{scope}"]
        assert scope in errors[f"perimeter.data_scopes.{scope}"]


def test_every_scope_the_federation_carries_is_accepted(cert_pem: str) -> None:
    assert _scope_errors(_request(cert_pem, ["franceconnect"], CARRIED)) == {}


def test_with_another_access_mode_the_scope_stays_useful(cert_pem: str) -> None:
    request = _request(cert_pem, ["franceconnect", "spi"], ["dgfip_rfr", *UNCARRIED])
    assert _scope_errors(request) == {}
    # Without FranceConnect the rule does not apply at all.
    assert _scope_errors(_request(cert_pem, ["spi"], ["dgfip_rfr", *UNCARRIED])) == {}

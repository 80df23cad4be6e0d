"""The example partner app reads API Impôt Particulier's answers in the provider's shapes
(``SituationsIrAssiettesFCV1``: one ``SituationsIRAssiettesJAXBbean``): what it sends (both
tokens, the provider's media type in ``Accept``), ``rfr`` and ``nbPart``, a ``null`` RFR
(N-2 then), a 404 (N-2 then) and what it refuses to compute on."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
from examples.quotient_familial.app import Problem, obtain_result
from examples.quotient_familial.config import Config
from examples.quotient_familial.gateway import MEDIA_TYPE, Gateway

TODAY = dt.date(2026, 3, 2)
N1, N2 = 2025, 2024
FC_TOKEN = "federation-access-token"
PROBLEM = "application/problem+json"

# The provider's schema for this operation, limited to the consented data (dgfip_rfr,
# dgfip_nbpart: rfr, nbPart, sitPart, sitParDeclaree).
COUPLE = {
    "rfr": 38_400,
    "nbPart": 2.5,
    "sitPart": "PAC",
    "sitParDeclaree": {
        "sitPartP": "0",
        "sitPartF": "0",
        "sitPartW": "0",
        "sitComb": "0",
        "pensVeufGuerre": "0",
        "indEnfSeul5ansMin": "0",
        "indNonSeul": "0",
    },
}


class ScriptedGateway(Gateway):
    """The example's own ``Gateway`` code, its HTTP client answered by a script per year."""

    def __init__(self, answers: dict[int, tuple[int, Any]]) -> None:
        self.config = Config(
            partner_url="http://127.0.0.1:8700",
            issuer="http://federation.invalid",
            discovery_url="http://federation.invalid/.well-known/openid-configuration",
            fc_client_id="fc",
            fc_client_secret="fc-secret",
            redirect_uri="http://127.0.0.1:8700/retour",
            post_logout_redirect_uri="http://127.0.0.1:8700/",
            token_url="https://gateway.invalid/token",
            api_base_url="https://gateway.invalid/impotparticulier/1.0",
            gateway_client_id="city",
            gateway_client_secret="city-secret",
            cert_file="unused",
            key_file="unused",
            ca_file="unused",
        )
        self.answers = answers
        self.requests: list[httpx.Request] = []
        self._http = httpx.AsyncClient(transport=httpx.MockTransport(self._handle))
        self._token = None
        self._lock = asyncio.Lock()

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "gw", "expires_in": 3600})
        annrev = int(request.url.path.rsplit("/", 1)[1])
        status, body = self.answers[annrev]
        media = MEDIA_TYPE if status == 200 else PROBLEM
        return httpx.Response(
            status, content=json.dumps(body).encode(), headers={"Content-Type": media}
        )


def _problem(status: int, code: str) -> dict[str, Any]:
    return {"type": f"urn:guichet:problem:{code}", "status": status, "code": code}


def _run(gateway: ScriptedGateway) -> Any:
    async def go() -> Any:
        try:
            return await obtain_result(gateway, FC_TOKEN, TODAY)
        finally:
            await gateway.close()

    return asyncio.run(go())


def test_the_rfr_and_parts_of_the_providers_answer() -> None:
    gateway = ScriptedGateway({N1: (200, COUPLE)})
    result = _run(gateway)
    assert (result.annrev, result.rfr, result.parts) == (N1, 38_400, Decimal("2.5"))
    assert result.qf == Decimal("1280.00")  # 38 400 / 12 / 2.5
    assert result.tranche.lettre == "E"
    call = gateway.requests[-1]
    assert call.url.path == f"/impotparticulier/1.0/situations/ir/assiettes/annrev/{N1}"
    assert call.headers["Accept"] == f"{MEDIA_TYPE}, {PROBLEM}"
    assert call.headers["Authorization"] == "Bearer gw"
    assert call.headers["X-FranceConnect-OAuth"] == FC_TOKEN


def test_a_null_rfr_in_n_minus_1_falls_back_to_n_minus_2() -> None:
    gateway = ScriptedGateway({N1: (200, {**COUPLE, "rfr": None}), N2: (200, COUPLE)})
    result = _run(gateway)
    assert (result.annrev, result.rfr) == (N2, 38_400)


def test_a_null_rfr_in_both_years_gives_no_quotient_and_bracket_f() -> None:
    not_yet = {"rfr": None, "nbPart": 1}
    gateway = ScriptedGateway({N1: (200, {**COUPLE, "rfr": None}), N2: (200, not_yet)})
    result = _run(gateway)
    assert (result.annrev, result.rfr, result.parts, result.qf) == (N2, None, Decimal(1), None)
    assert result.tranche.lettre == "F"


def test_no_situation_in_n_minus_1_falls_back_to_n_minus_2() -> None:
    gateway = ScriptedGateway({N1: (404, _problem(404, "not_found")), N2: (200, COUPLE)})
    assert _run(gateway).annrev == N2


def test_no_situation_in_either_year_is_explained() -> None:
    gateway = ScriptedGateway(
        {N1: (404, _problem(404, "not_found")), N2: (404, _problem(404, "not_found"))}
    )
    with pytest.raises(Problem, match="Aucune situation fiscale"):
        _run(gateway)


@pytest.mark.parametrize(
    "body",
    [
        {**COUPLE, "rfr": "38400"},  # a string where the provider says integer
        {**COUPLE, "rfr": True},
        {**COUPLE, "rfr": -1},
        {**COUPLE, "nbPart": 0},
        {"rfr": 38_400},  # no parts
        [COUPLE],  # not the provider's object
    ],
)
def test_an_answer_off_the_providers_schema_is_a_technical_error(body: Any) -> None:
    with pytest.raises(Problem, match="Erreur technique"):
        _run(ScriptedGateway({N1: (200, body)}))

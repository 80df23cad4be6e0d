"""FranceConnect mode through the whole gateway (mTLS, gateway token, chain, quota, journal),
with the real sandbox federation app in process: served, refused, and federation down."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.types import ASGIApp

from guichet.apis.context import ApiDeps
from guichet.apis.impot_particulier import build_operations
from guichet.db import transaction
from guichet.federation.checktoken import FederationCheck, FederationConfig, HttpFederationCheck
from guichet.federation.clients import declare_habilitation_client, register_client
from guichet.federation.models import ClientKind
from guichet.federation.server import FederationDeps
from guichet.federation_web.app import build_federation_app
from guichet.habilitation.models import Environment, Habilitation
from guichet.sandbox import personas
from tests.support.factories import Partner
from tests.unit.federation.test_checktoken import IDENTITY, ISSUER, FakeFranceConnect, Federation
from tests.unit.gateway.support import World, open_world, refused, served

DATA = "dgfip_rfr dgfip_nbpart dgfip_annee_n_moins_1"


@dataclass
class Setup:
    world: World
    fed: Federation
    app: ASGIApp
    down: ASGIApp
    partner: Partner

    def gateway(
        self, fed_token: str | None, path: str, app: ASGIApp | None = None
    ) -> httpx.Response:
        headers = {} if fed_token is None else {"X-FranceConnect-OAuth": fed_token}
        token = self.world.token(self.partner, app=app or self.app)
        return self.world.get(
            path, token=token, cert=self.partner.cert_pem, app=app or self.app, headers=headers
        )

    def citizen(self, habilitation_id: str | None, spi: str = personas.DUBOIS.spi) -> str:
        hab = uuid.UUID(habilitation_id) if habilitation_id else None
        sp = self.fed.service_provider(hab, scopes=f"{IDENTITY} {DATA}")
        self.world.reload()  # the binding reaches the gateway through its policy snapshot
        return self.world.loop.run(self.fed.citizen_token(sp, spi, f"{IDENTITY} {DATA}"))


def _app_with(world: World, check: FederationCheck) -> ASGIApp:
    platform = world.new_platform()
    deps = ApiDeps(world.runtime.session_factory, world.clock)
    platform.operations.update(build_operations(deps, {Environment.SANDBOX: check}))
    return platform.gateway_app(Environment.SANDBOX)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with open_world("sqlite", tmp_path_factory.mktemp("fc")) as world:
        rt = world.runtime
        with transaction(rt.session_factory) as session:
            provider = register_client(
                session, kind=ClientKind.DATA_PROVIDER, name="DGFiP", now=world.clock.now()
            )
        fed_app = build_federation_app(
            FederationDeps(
                issuer=ISSUER,
                session_factory=rt.session_factory,
                master=rt.master,
                clock=world.clock,
            )
        )
        fed = Federation(rt.session_factory, world.clock, rt.master, fed_app, provider)
        config = fed.config()
        up = HttpFederationCheck(config, world.clock, client=fed.http())
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
        down = HttpFederationCheck(
            FederationConfig(
                f"{closed}/checktoken", f"{closed}/jwks", ISSUER, provider.client_id, "x"
            ),
            world.clock,
        )
        partner = world.partner(
            access_modes=("franceconnect",), data_scopes=("dgfip_rfr", "dgfip_nbpart")
        )
        yield Setup(world, fed, _app_with(world, up), _app_with(world, down), partner)
        world.loop.run(up.aclose())
        world.loop.run(down.aclose())


def test_served_through_the_chain_and_journaled_with_the_pseudonym(setup: Setup) -> None:
    year = setup.world.year - 1
    fc = setup.citizen(setup.partner.habilitation_id)
    r = setup.gateway(fc, f"/impotparticulier/1.0/situations/ir/assiettes/annrev/{year}")
    record = served(setup.world, r, setup.partner, spi=personas.DUBOIS.spi)
    assert record["operation"] == "GET ir_assiettes_fc"
    assert set(record["data_scopes"]) == {"dgfip_rfr", "dgfip_nbpart"}
    assert "rfr" in r.json()
    # The convention's OS1 over the same checks, in its own shape.
    r = setup.gateway(fc, f"/impotparticulier/os1/{year}")
    served(setup.world, r, setup.partner, spi=personas.DUBOIS.spi)
    assert set(r.json()) == {"rfr", "nbPart"}
    assert fc not in str(setup.world.record(r.headers["x-correlation-id"]))


def test_refusals_are_journaled_without_data(setup: Setup) -> None:
    year = setup.world.year - 1
    path = f"/impotparticulier/1.0/situations/ir/assiettes/annrev/{year}"
    refused(setup.world, setup.gateway(None, path), 401, "federation_token_missing")
    refused(setup.world, setup.gateway("unknown", path), 401, "federation_token_invalid")
    other = setup.citizen(None)
    refused(setup.world, setup.gateway(other, path), 403, "federation_client_not_habilitated")
    homonym = setup.citizen(setup.partner.habilitation_id, personas.HOMONYM_1.spi)
    refused(setup.world, setup.gateway(homonym, path), 404, "not_found")


def test_federation_down_is_a_503_and_no_data(setup: Setup) -> None:
    year = setup.world.year - 1
    fc = setup.citizen(setup.partner.habilitation_id)
    r = setup.gateway(
        fc, f"/impotparticulier/1.0/situations/ir/assiettes/annrev/{year}", app=setup.down
    )
    refused(setup.world, r, 503, "upstream_unavailable")
    assert int(r.headers["retry-after"]) > 0


def test_a_token_below_eidas1_is_refused_and_journaled(setup: Setup) -> None:
    """The gateway configured with another federation (here a fake FranceConnect) refuses
    a token whose ``acr`` is below eidas1, journaled with its stable code."""
    world = setup.world
    fc = FakeFranceConnect(world.clock)
    declared = "e" * 64
    fc.tokens = {"low-level": (declared, "eidas0"), "no-level": (declared, None)}
    with transaction(world.runtime.session_factory) as session:
        hab = session.get(Habilitation, uuid.UUID(setup.partner.habilitation_id))
        assert hab is not None
        declare_habilitation_client(session, hab, declared, world.clock.now())
    world.reload()
    check = fc.check(world.clock)
    app = _app_with(world, check)
    path = f"/impotparticulier/1.0/situations/ir/assiettes/annrev/{world.year - 1}"
    for token in fc.tokens:
        r = setup.gateway(token, path, app=app)
        refused(world, r, 401, "federation_acr_insufficient")
    world.loop.run(check.aclose())

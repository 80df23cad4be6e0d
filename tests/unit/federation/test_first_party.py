"""The portal's own client reads the citizen's identity for them: no consent to a démarche."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any, cast

from starlette.responses import HTMLResponse, Response

from guichet.federation.consent import FirstPartyConsent, Interaction

IDENTITY = ("openid", "given_name", "family_name", "birthdate", "gender", "birthplace")


class Asking:
    """A consent step that always shows its page."""

    async def show(self, interaction: Interaction) -> Response | None:
        return HTMLResponse("consent")

    async def decide(self, interaction: Interaction, form: Mapping[str, str]) -> bool:
        return True


def interaction(client_id: str, scopes: tuple[str, ...], hab: uuid.UUID | None = None) -> Any:
    return Interaction(
        id="i",
        client_id=client_id,
        client_name="x",
        habilitation_id=hab,
        scopes=scopes,
        citizen=cast(Any, None),
        idp=cast(Any, None),
        csrf="c",
        action="/",
    )


def test_only_the_portal_reading_identity_skips_consent() -> None:
    step = FirstPartyConsent(Asking(), lambda: frozenset({"portal"}))

    def shown(i: Interaction) -> bool:
        return asyncio.run(step.show(i)) is not None

    assert not shown(interaction("portal", IDENTITY))
    # Asking for tax data, or being a partner's client, goes through the consent page.
    assert shown(interaction("portal", (*IDENTITY, "dgfip_rfr")))
    assert shown(interaction("portal", IDENTITY, uuid.uuid4()))
    assert shown(interaction("partner", IDENTITY))
    # No portal registered (no ``guichet init``): everyone is asked.
    assert asyncio.run(FirstPartyConsent(Asking(), frozenset).show(interaction("portal", IDENTITY)))

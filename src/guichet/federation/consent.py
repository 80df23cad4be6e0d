"""The consent step between sign-in and the return to the partner (the extension point).

After the citizen signs in, the federation asks ``FederationDeps.consent`` for a page.
``NoConsentStep`` (the default until the consent page of issue 5 §2) shows none and records
nothing: the flow continues. A real step renders the partner's labels and the data's origin
and posts the answer back; ``decide`` records it and says whether the citizen accepted —
a refusal sends ``access_denied`` to the partner.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from starlette.responses import Response

from guichet.federation.citizens import Citizen
from guichet.federation.providers import IdentityProvider


@dataclass(frozen=True, slots=True)
class Interaction:
    """One authorization request, once the citizen has signed in."""

    id: str  # the interaction id in the federation's URLs
    client_id: str
    client_name: str
    habilitation_id: uuid.UUID | None
    scopes: tuple[str, ...]
    citizen: Citizen
    idp: IdentityProvider
    csrf: str  # to put in the consent form's hidden ``csrf`` field
    action: str  # where the consent form posts (``POST``, fields ``csrf`` and ``decision``)


class ConsentStep(Protocol):
    async def show(self, interaction: Interaction) -> Response | None:
        """The consent page for this interaction, or None to continue without asking."""
        ...

    async def decide(self, interaction: Interaction, form: Mapping[str, str]) -> bool:
        """Record the citizen's answer (posted form, CSRF already checked); True = accepted."""
        ...


class NoConsentStep:
    """Issue 5 §1: no consent page yet — nothing shown, nothing recorded, the flow continues."""

    async def show(self, interaction: Interaction) -> Response | None:
        return None

    async def decide(self, interaction: Interaction, form: Mapping[str, str]) -> bool:
        return True

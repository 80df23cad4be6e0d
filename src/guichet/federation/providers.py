"""The identity providers a citizen chooses from (fournisseurs d'identité), all sandbox ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class IdentityProvider:
    slug: str
    name: str
    description: str
    amr: tuple[str, ...]  # RFC 8176 authentication method references
    email_domain: str


PROVIDERS: Final = (
    IdentityProvider(
        "impots-gouv",
        "impots.gouv.fr",
        "Avec votre numéro fiscal et votre mot de passe impots.gouv.fr.",
        ("pwd",),
        "impots.bac-a-sable.test",
    ),
    IdentityProvider(
        "identite-numerique-la-poste",
        "L'Identité Numérique La Poste",
        "Avec votre application L'Identité Numérique La Poste.",
        ("pwd", "mfa"),
        "laposte.bac-a-sable.test",
    ),
    IdentityProvider(
        "ameli",
        "ameli.fr",
        "Avec votre compte ameli, l'Assurance Maladie.",
        ("pwd",),
        "ameli.bac-a-sable.test",
    ),
)
BY_SLUG: Final = {p.slug: p for p in PROVIDERS}

"""Sandbox citizens: the sandbox store's persons, their sign-in, and their identity pivot.

The federation's citizens are the sandbox population itself (``records.models.Person`` in the
``sandbox`` store, never the production store), so the identity pivot a partner receives
matches the tax records exactly.
"""

from __future__ import annotations

import hmac
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.orm import Session

from guichet.federation.providers import IdentityProvider
from guichet.federation.scopes import IDENTITY_SCOPES, PIVOT_CLAIMS
from guichet.records.models import Person
from guichet.records.service import person_by_spi

SANDBOX_STORE: Final = "sandbox"
# One documented password for every sandbox citizen (docs/federation.md): fictive people only.
SANDBOX_PASSWORD: Final = "123"  # noqa: S105
FRANCE: Final = "99100"


@dataclass(frozen=True, slots=True)
class SuggestedCitizen:
    """A citizen offered on every sign-in page (``FederationDeps.suggested``)."""

    spi: str
    label: str


@dataclass(frozen=True, slots=True)
class Citizen:
    """A signed-in sandbox citizen: their SPI and their identity pivot."""

    spi: str
    given_name: str
    family_name: str
    preferred_username: str | None
    birthdate: str
    gender: str
    birthplace: str
    birthcountry: str

    def claims(self, idp: IdentityProvider) -> dict[str, Any]:
        """Every identity claim FranceConnect v2 defines, for this citizen."""
        first = _ascii(self.given_name.split()[0]).lower()
        return {
            "given_name": self.given_name,
            "given_name_array": self.given_name.split(),
            "family_name": self.family_name,
            "birthdate": self.birthdate,
            "gender": self.gender,
            "birthplace": self.birthplace,
            "birthcountry": self.birthcountry,
            "preferred_username": self.preferred_username or "",
            "email": f"{first}.{_ascii(self.family_name).lower().replace(' ', '-')}"
            f"@{idp.email_domain}",
        }

    def pivot(self) -> dict[str, Any]:
        """The identity pivot alone (what a data provider matches on)."""
        claims = self.claims(_NO_IDP)
        return {name: claims[name] for name in PIVOT_CLAIMS}


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c) and c != "'")


_NO_IDP: Final = IdentityProvider("", "", "", (), "")


def released_claims(claims: Mapping[str, Any], scopes: Iterable[str]) -> dict[str, Any]:
    """The claims the granted identity scopes release (FranceConnect v2 scope → claims)."""
    granted = set(scopes)
    names = [c for scope, cs in IDENTITY_SCOPES.items() if scope in granted for c in cs]
    return {name: claims[name] for name in names}


def from_person(person: Person) -> Citizen:
    """OpenID Connect claims from the état civil: ``birthplace`` is the birth commune's COG
    when born in France, empty otherwise (FranceConnect); ``birthcountry`` is a COG code."""
    return Citizen(
        spi=person.spi,
        given_name=" ".join(person.prenoms.split()),
        family_name=person.nom_naissance,
        preferred_username=person.nom_usage,
        birthdate=person.date_naissance.isoformat(),
        gender="female" if person.sexe == "F" else "male",
        birthplace=(person.code_commune_naissance or "")
        if person.code_pays_naissance == FRANCE
        else "",
        birthcountry=person.code_pays_naissance,
    )


def find(session: Session, spi: str) -> Citizen | None:
    """The sandbox citizen with this SPI, if any."""
    person = person_by_spi(session, SANDBOX_STORE, spi)
    return from_person(person) if person is not None else None


def sign_in(session: Session, spi: str, password: str) -> Citizen | None:
    """Check a sandbox sign-in: a known SPI and the sandbox password."""
    password_ok = hmac.compare_digest(password.encode(), SANDBOX_PASSWORD.encode())
    spi = spi.strip().replace(" ", "")
    if not (len(spi) == 13 and spi.isdigit()):
        return None
    citizen = find(session, spi)
    return citizen if password_ok and citizen is not None else None

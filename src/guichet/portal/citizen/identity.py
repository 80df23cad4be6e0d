"""Who the signed-in citizen is: FranceConnect's identity pivot → exactly one person of the
sandbox store, whose SPI becomes the portal's pseudonym for them and goes no further."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.orm import Session, sessionmaker

from guichet.federation.pivot import IdentityPivot, persons_of_pivot
from guichet.logs import event
from guichet.portal.citizen.relying_party import SignInRefused, _refused
from guichet.secrets import MasterSecret

log = logging.getLogger(__name__)

SANDBOX_STORE: Final = "sandbox"
FRANCE: Final = "99100"


@dataclass(frozen=True, slots=True)
class Citizen:
    """The signed-in citizen as the portal keeps them: a pseudonym and a name to show."""

    subject: str
    display_name: str


def pivot_of(info: Mapping[str, Any]) -> IdentityPivot:
    """FranceConnect v2's identity pivot from the verified UserInfo claims."""
    values = {
        name: info.get(name)
        for name in ("given_name", "family_name", "birthdate", "gender", "birthcountry")
    }
    if not all(isinstance(v, str) and v.strip() for v in values.values()):
        raise _refused(
            "pivot_incomplete",
            "FranceConnect n'a pas transmis toute votre identité (prénoms, nom, date, sexe, "
            "lieu et pays de naissance) : nous ne pouvons pas retrouver vos échanges.",
        )
    birthplace = info.get("birthplace") or ""
    if not isinstance(birthplace, str) or (values["birthcountry"] == FRANCE and not birthplace):
        raise _refused(
            "pivot_incomplete", "FranceConnect n'a pas transmis votre lieu de naissance."
        )
    try:
        birthdate = dt.date.fromisoformat(str(values["birthdate"]))
    except ValueError as exc:
        raise _refused("pivot_incomplete") from exc
    return IdentityPivot(
        given_name=str(values["given_name"]),
        family_name=str(values["family_name"]),
        birthdate=birthdate,
        gender=str(values["gender"]),
        birthplace=birthplace,
        birthcountry=str(values["birthcountry"]),
    )


def find_citizen(
    session_factory: sessionmaker[Session], master: MasterSecret, info: Mapping[str, Any]
) -> Citizen:
    """The identity pivot must designate exactly one person of the sandbox store (the
    sandbox federation knows only sandbox citizens); the SPI found becomes its pseudonym
    here and goes no further."""
    pivot = pivot_of(info)
    with session_factory() as session:
        spis = persons_of_pivot(session.connection(), SANDBOX_STORE, pivot)
    if not spis:
        event(log, "portal.citizen:person_not_found")
        raise SignInRefused(
            "person_not_found",
            "Votre identité FranceConnect ne correspond à aucune personne connue du bac à "
            "sable : il n'y a donc aucun échange à vous montrer.",
            404,
        )
    if len(spis) > 1:
        event(log, "portal.citizen:person_ambiguous", count=len(spis))
        raise SignInRefused(
            "person_ambiguous",
            "Votre identité FranceConnect correspond à plusieurs personnes : nous ne pouvons "
            "pas savoir laquelle vous êtes, et ne montrons donc rien.",
            409,
        )
    name = " ".join(f"{pivot.given_name} {pivot.family_name}".split())
    return Citizen(subject=master.pseudonym(spis[0]), display_name=name)

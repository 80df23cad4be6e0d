"""Creating habilitations and moving them through their states; every move is an event.

The transition table is the one place that says which moves are allowed
(SPEC §4: validated → suspended ↔ active; terminated [000 §12, §14]).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from dateutil.relativedelta import relativedelta
from sqlalchemy import select
from sqlalchemy.orm import Session
from stdnum.fr import siret as stdnum_siret

from guichet.catalog.products import PRODUCTS, YEAR_FALLBACK_SCOPE, YEAR_SCOPES
from guichet.db.models import bump_generation
from guichet.habilitation.blocks import TRUSTED_CERTIFICATE_APIS
from guichet.habilitation.models import (
    AccessMode,
    Certificate,
    Environment,
    Habilitation,
    HabilitationEvent,
    HabilitationStatus,
    Organisation,
)
from guichet.pki import certificate_info


class HabilitationError(ValueError):
    """A request the rules refuse; the message says why, in the users' words."""


class Action(StrEnum):
    SUSPEND = "suspend"
    RESUME = "resume"
    REVOKE = "revoke"


TRANSITIONS: dict[tuple[HabilitationStatus, Action], HabilitationStatus] = {
    (HabilitationStatus.ACTIVE, Action.SUSPEND): HabilitationStatus.SUSPENDED,
    (HabilitationStatus.SUSPENDED, Action.RESUME): HabilitationStatus.ACTIVE,
    (HabilitationStatus.ACTIVE, Action.REVOKE): HabilitationStatus.TERMINATED,
    (HabilitationStatus.SUSPENDED, Action.REVOKE): HabilitationStatus.TERMINATED,
}

EVENT_NAMES = {
    Action.SUSPEND: "habilitation:suspended",
    Action.RESUME: "habilitation:resumed",
    Action.REVOKE: "habilitation:terminated",
}


def get_or_create_organisation(
    session: Session, siret: str, name: str, now: dt.datetime
) -> Organisation:
    compact = stdnum_siret.compact(siret)
    if not stdnum_siret.is_valid(compact):
        raise HabilitationError(f"SIRET invalide : {siret!r}.")
    org = session.scalar(select(Organisation).where(Organisation.siret == compact))
    if org is None:
        org = Organisation(siret=compact, name=name.strip(), created_at=now)
        session.add(org)
        session.flush()
    return org


@dataclass(frozen=True)
class HabilitationSpec:
    """What a validated request grants; checked against the catalogue before anything is written."""

    demarche: str
    environment: Environment
    apis: Sequence[str]
    access_modes: Sequence[str]
    data_scopes: Sequence[str]
    year_scopes: Sequence[str]
    ip_ranges: Sequence[str]
    certificates_pem: Sequence[str]
    quotas: dict[str, int] | None = None
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    # Data scope → the literal label shown to the citizen on the consent page [003 annexe 1].
    data_labels: Mapping[str, str] | None = None

    def validate(self) -> None:
        if not self.demarche.strip():
            raise HabilitationError("Le nom de la démarche est obligatoire.")
        unknown = [a for a in self.apis if a not in PRODUCTS]
        if not self.apis or unknown:
            raise HabilitationError(f"API inconnue : {', '.join(unknown) or '(aucune)'}.")
        modes = {m.value for m in AccessMode}
        if bad := [m for m in self.access_modes if m not in modes]:
            raise HabilitationError(f"Mode d'accès inconnu : {', '.join(bad)}.")
        known = frozenset().union(*(PRODUCTS[a].data_scopes for a in self.apis))
        if bad := [s for s in self.data_scopes if s not in known]:
            raise HabilitationError(f"Périmètre de données inconnu : {', '.join(bad)}.")
        years = set(YEAR_SCOPES) | {YEAR_FALLBACK_SCOPE}
        if bad := [y for y in self.year_scopes if y not in years]:
            raise HabilitationError(f"Année de revenus inconnue : {', '.join(bad)}.")
        if not self.ip_ranges:
            raise HabilitationError("Déclarez au moins une adresse IP sortante.")
        for cidr in self.ip_ranges:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise HabilitationError(f"Adresse IP ou plage CIDR invalide : {cidr!r}.") from None
        if not self.certificates_pem:
            raise HabilitationError("Déclarez au moins un certificat client.")
        if TRUSTED_CERTIFICATE_APIS & set(self.apis) and any(
            _self_signed(pem) for pem in self.certificates_pem
        ):
            # [002 §10] C4: the request's checks refuse it first; never granted regardless.
            raise HabilitationError(
                "Un certificat autosigné n'est pas accepté pour l'API FICOBA : fournissez un "
                "certificat délivré par une autorité de certification reconnue."
            )
        for api, quota in (self.quotas or {}).items():
            if api not in self.apis or not (1 <= int(quota) <= 100_000):
                raise HabilitationError(f"Quota invalide pour {api!r} : {quota!r}.")
        for scope, label in (self.data_labels or {}).items():
            if scope not in self.data_scopes:
                raise HabilitationError(
                    f"Libellé pour un périmètre de données non demandé : {scope!r}."
                )
            if not isinstance(label, str) or not 1 <= len(label.strip()) <= 200:
                raise HabilitationError(
                    f"Le libellé de {scope!r} doit compter de 1 à 200 caractères."
                )
        if self.valid_until and self.valid_from and self.valid_until <= self.valid_from:
            raise HabilitationError("La date de fin doit suivre la date de début.")


def _self_signed(pem: str) -> bool:
    try:
        return certificate_info(pem).self_signed
    except ValueError:
        return False  # unreadable: refused where the certificate is added


def create_habilitation(
    session: Session,
    organisation: Organisation,
    spec: HabilitationSpec,
    *,
    actor: str,
    now: dt.datetime,
) -> Habilitation:
    spec.validate()
    quotas = {api: PRODUCTS[api].default_quota_per_minute for api in spec.apis}
    quotas.update(spec.quotas or {})
    hab = Habilitation(
        organisation_id=organisation.id,
        environment=spec.environment,
        demarche=spec.demarche.strip(),
        status=HabilitationStatus.ACTIVE,
        apis=list(spec.apis),
        access_modes=list(spec.access_modes),
        data_scopes=sorted(spec.data_scopes),
        year_scopes=sorted(spec.year_scopes),
        data_labels={k: v.strip() for k, v in sorted((spec.data_labels or {}).items())},
        ip_ranges=[str(ipaddress.ip_network(c, strict=False)) for c in spec.ip_ranges],
        quotas=quotas,
        valid_from=spec.valid_from or now,
        valid_until=spec.valid_until,
        created_at=now,
        updated_at=now,
    )
    session.add(hab)
    session.flush()
    for pem in spec.certificates_pem:
        add_certificate(session, hab, pem, now=now)
    session.add(
        HabilitationEvent(
            habilitation_id=hab.id, at=now, actor=actor, name="habilitation:validated", reason=None
        )
    )
    bump_generation(session)
    return hab


def update_habilitation(
    session: Session,
    hab: Habilitation,
    spec: HabilitationSpec,
    *,
    actor: str,
    now: dt.datetime,
) -> Habilitation:
    """Replace a habilitation's policy by a newly validated request's (SPEC §4: "a validated
    habilitation can be updated by a new request"); certificates no longer declared go."""
    spec.validate()
    if spec.environment is not hab.environment:
        raise HabilitationError("Une mise à jour ne change pas d'environnement.")
    quotas = {api: PRODUCTS[api].default_quota_per_minute for api in spec.apis}
    quotas.update(spec.quotas or {})
    hab.demarche = spec.demarche.strip()
    hab.apis = list(spec.apis)
    hab.access_modes = list(spec.access_modes)
    hab.data_scopes = sorted(spec.data_scopes)
    hab.year_scopes = sorted(spec.year_scopes)
    hab.data_labels = {k: v.strip() for k, v in sorted((spec.data_labels or {}).items())}
    hab.ip_ranges = [str(ipaddress.ip_network(c, strict=False)) for c in spec.ip_ranges]
    hab.quotas = quotas
    if spec.valid_until is not None:
        hab.valid_until = spec.valid_until
    hab.updated_at = now
    declared: dict[str, str] = {}
    for pem in spec.certificates_pem:
        try:
            declared[certificate_info(pem).thumbprint] = pem
        except ValueError as exc:
            raise HabilitationError(f"Certificat illisible : {exc}") from None
    for cert in list(hab.certificates):
        if cert.thumbprint not in declared:
            hab.certificates.remove(cert)
    kept = {c.thumbprint for c in hab.certificates}
    session.flush()
    for tp, pem in declared.items():
        if tp not in kept:
            add_certificate(session, hab, pem, now=now)
    session.add(
        HabilitationEvent(
            habilitation_id=hab.id, at=now, actor=actor, name="habilitation:updated", reason=None
        )
    )
    bump_generation(session)
    return hab


def add_certificate(
    session: Session, hab: Habilitation, pem: str, *, now: dt.datetime
) -> Certificate:
    try:
        info = certificate_info(pem)
    except ValueError as exc:
        raise HabilitationError(f"Certificat illisible : {exc}") from None
    cert = Certificate(
        habilitation_id=hab.id,
        thumbprint=info.thumbprint,
        subject=info.subject,
        issuer=info.issuer,
        not_before=info.not_before,
        not_after=info.not_after,
        self_signed=info.self_signed,
        pem=pem.strip() + "\n",
        created_at=now,
    )
    session.add(cert)
    bump_generation(session)
    return cert


def find_habilitation(session: Session, ident: str) -> Habilitation:
    """By full UUID or by an unambiguous prefix of at least 8 characters (as listed)."""
    ident = ident.strip().lower()
    try:
        hab = session.get(Habilitation, uuid.UUID(ident))
        if hab is not None:
            return hab
    except ValueError:
        pass
    if len(ident) >= 8:
        matches = [h for h in session.scalars(select(Habilitation)) if str(h.id).startswith(ident)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise HabilitationError(
                f"Identifiant ambigu : {ident!r} désigne plusieurs habilitations."
            )
    raise HabilitationError(f"Aucune habilitation {ident!r}.")


def transition(
    session: Session,
    hab: Habilitation,
    action: Action,
    *,
    reason: str,
    actor: str,
    now: dt.datetime,
) -> Habilitation:
    if not reason.strip():
        raise HabilitationError("Un motif est obligatoire.")
    target = TRANSITIONS.get((hab.status, action))
    if target is None:
        raise HabilitationError(
            f"Impossible de {_VERB[action]} une habilitation {_STATE[hab.status]}."
        )
    hab.status = target
    hab.status_reason = reason.strip()
    hab.updated_at = now
    session.add(
        HabilitationEvent(
            habilitation_id=hab.id,
            at=now,
            actor=actor,
            name=EVENT_NAMES[action],
            reason=reason.strip(),
        )
    )
    bump_generation(session)
    return hab


# [000 §14] termination takes effect two months after the written notice.
TERMINATION_NOTICE = relativedelta(months=2)


def terminate_with_notice(
    session: Session,
    hab: Habilitation,
    *,
    reason: str,
    actor: str,
    now: dt.datetime,
) -> Habilitation:
    """[000 §14] "Un préavis de deux mois est alors nécessaire": calls keep working until
    ``valid_until`` = now + 2 months (or an earlier end already set); the scheduler then
    marks the habilitation terminated."""
    if not reason.strip():
        raise HabilitationError("Un motif est obligatoire.")
    if hab.status is HabilitationStatus.TERMINATED:
        raise HabilitationError("Cette habilitation est déjà résiliée.")
    end = now + TERMINATION_NOTICE
    if hab.valid_until is None or hab.valid_until > end:
        hab.valid_until = end
    hab.updated_at = now
    session.add(
        HabilitationEvent(
            habilitation_id=hab.id,
            at=now,
            actor=actor,
            name="habilitation:termination_notified",
            reason=reason.strip(),
        )
    )
    bump_generation(session)
    return hab


_VERB = {Action.SUSPEND: "suspendre", Action.RESUME: "rétablir", Action.REVOKE: "révoquer"}
_STATE = {
    HabilitationStatus.ACTIVE: "active",
    HabilitationStatus.SUSPENDED: "suspendue",
    HabilitationStatus.TERMINATED: "résiliée",
}

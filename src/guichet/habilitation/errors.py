"""The habilitation domain's errors, each with a stable code: requests and habilitations."""

from __future__ import annotations

from typing import ClassVar

from guichet.errors import BadRequest, Forbidden, GuichetError, NotFound


class RequestNotFound(NotFound):
    """Also what a stranger to the request gets: its existence is not disclosed."""

    code = "request_not_found"
    title = "Demande d'habilitation introuvable"


class RequestForbidden(Forbidden):
    code = "request_forbidden"
    title = "Action non permise sur cette demande"


class TransitionRefused(GuichetError):
    status: ClassVar[int] = 409
    code: ClassVar[str] = "request_transition_refused"
    title: ClassVar[str] = "Action impossible dans l'état de la demande"


class ReasonRequired(BadRequest):
    code = "reason_required"
    title = "Un motif est obligatoire"


class HabilitationActionRefused(Forbidden):
    code = "habilitation_action_refused"
    title = "Action non permise sur cette habilitation"


class HabilitationNotFound(NotFound):
    """Also what a partner gets for another organisation's habilitation."""

    code = "habilitation_not_found"
    title = "Habilitation introuvable"


class SecurityCommitmentExpired(GuichetError):
    """[000 §3.4.1] production stays suspended until a new attestation is validated."""

    status: ClassVar[int] = 409
    code: ClassVar[str] = "security_commitment_expired"
    title: ClassVar[str] = "Engagement de sécurité expiré"

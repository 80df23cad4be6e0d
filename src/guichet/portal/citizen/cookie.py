"""The citizen's encrypted cookie (Fernet under a key derived from the master secret), bound
to one portal session: the pending sign-in, then the subject pseudonym and the name to show."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Final

from cryptography.fernet import Fernet, InvalidToken
from starlette.requests import Request
from starlette.responses import Response

from guichet.accounts.sessions import SessionData
from guichet.clock import Clock
from guichet.portal.citizen.relying_party import _number, _same
from guichet.portal.web import is_https
from guichet.secrets import MasterSecret

COOKIE: Final = "guichet_citoyen"
SECURE_COOKIE: Final = "__Host-guichet_citoyen"


def session_binding(session: SessionData) -> str:
    """What ties the citizen cookie to one portal session (its cookie value's SHA-256)."""
    return hashlib.sha256(session.token.encode()).hexdigest()


class CitizenCookie:
    """The citizen's encrypted cookie: readable only here, bound to one portal session,
    expired after ``exp``; a cookie that fails any of these reads as empty."""

    def __init__(self, master: MasterSecret, clock: Clock) -> None:
        key = bytes.fromhex(master.pseudonym("guichet/portal/citizen-cookie"))
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self._clock = clock

    def load(self, request: Request, session: SessionData | None) -> dict[str, Any]:
        raw = request.cookies.get(SECURE_COOKIE if is_https(request) else COOKIE)
        if not raw or session is None or len(raw) > 4096:
            return {}
        try:
            data = json.loads(self._fernet.decrypt(raw.encode()))
        except (InvalidToken, ValueError):
            return {}
        if (
            not isinstance(data, dict)
            or not _same(data.get("bind"), session_binding(session))
            or not _number(data.get("exp"))
            or data["exp"] <= self._clock.now().timestamp()
        ):
            return {}
        return data

    def save(
        self,
        request: Request,
        response: Response,
        session: SessionData,
        data: dict[str, Any],
        lifetime: int,
    ) -> None:
        sealed = {
            **data,
            "bind": session_binding(session),
            "exp": int(self._clock.now().timestamp()) + lifetime,
        }
        value = self._fernet.encrypt(json.dumps(sealed, separators=(",", ":")).encode())
        https = is_https(request)
        response.set_cookie(
            SECURE_COOKIE if https else COOKIE,
            value.decode(),
            max_age=lifetime,
            path="/",
            secure=https,
            httponly=True,
            samesite="lax",
        )

    def clear(self, request: Request, response: Response) -> None:
        https = is_https(request)
        response.delete_cookie(
            SECURE_COOKIE if https else COOKIE,
            path="/",
            secure=https,
            httponly=True,
            samesite="lax",
        )

    def decrypt(self, value: str) -> dict[str, Any]:
        """The cookie's content (tests and investigations: what the browser holds)."""
        data = json.loads(self._fernet.decrypt(value.encode()))
        assert isinstance(data, dict)
        return data

"""Reading the parameters of a request to the federation: each once, form bodies bounded."""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from starlette.requests import Request

MAX_BODY: Final = 16 * 1024
FORM: Final = "application/x-www-form-urlencoded"


def single_values(pairs: list[tuple[str, str]]) -> dict[str, str] | str:
    """RFC 6749 §3.1 / §3.2: parameters "MUST NOT be included more than once"."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            return name
        values[name] = value
    return values


async def read_form(request: Request) -> dict[str, str] | OAuth2Error:
    """An ``application/x-www-form-urlencoded`` UTF-8 body, each parameter once."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM:
        return InvalidRequestError(description=f"The request body must be {FORM}.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            return InvalidRequestError(description="The request body is too large.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        return InvalidRequestError(description="The request body is not valid form data.")
    values = single_values(pairs)
    if isinstance(values, str):
        return InvalidRequestError(description=f"Parameter '{values}' is repeated.")
    return values


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None

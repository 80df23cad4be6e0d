"""Authlib's httpx OAuth client, for the portal's own sign-in through the federation.

Authlib now prefers the httpx2 fork and says so, once per process, when it falls back on
httpx. guichet runs on httpx (its transports are what the gateway and the tests use), so
that notice would only greet every user of ``guichet run``: it is silenced here, for this
message alone.
"""

from __future__ import annotations

import warnings

from authlib.deprecate import AuthlibDeprecationWarning

warnings.filterwarnings(
    "ignore", message="The httpx module is deprecated", category=AuthlibDeprecationWarning
)

from authlib.integrations.base_client.errors import OAuthError  # noqa: E402
from authlib.integrations.httpx_client import AsyncOAuth2Client  # noqa: E402

__all__ = ["AsyncOAuth2Client", "OAuthError"]

"""The federation's scopes and the identity pivot claims each one releases."""

from __future__ import annotations

from typing import Final

from guichet.catalog.products import FRANCECONNECT_DATA_SCOPES

OPENID: Final = "openid"
# FranceConnect v2: scope → the claims it releases at /userinfo.
IDENTITY_SCOPES: Final[dict[str, tuple[str, ...]]] = {
    "given_name": ("given_name", "given_name_array"),
    "family_name": ("family_name",),
    "birthdate": ("birthdate",),
    "gender": ("gender",),
    "birthplace": ("birthplace",),
    "birthcountry": ("birthcountry",),
    "preferred_username": ("preferred_username",),
    "email": ("email",),
}
# The tax administration's data scopes FranceConnect carries (the catalogue's table):
# consented at the federation, checked by the provider, never released by the federation.
DATA_SCOPES: Final = FRANCECONNECT_DATA_SCOPES
SCOPES_SUPPORTED: Final = frozenset({OPENID, *IDENTITY_SCOPES, *DATA_SCOPES})
# The identity pivot (FranceConnect): what a data provider matches its records on.
PIVOT_CLAIMS: Final = (
    "given_name",
    "given_name_array",
    "family_name",
    "birthdate",
    "gender",
    "birthplace",
    "birthcountry",
)
CLAIMS_SUPPORTED: Final = ("sub", *[c for cs in IDENTITY_SCOPES.values() for c in cs])
ACR: Final = "eidas1"

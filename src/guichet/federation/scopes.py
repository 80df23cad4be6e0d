"""The federation's scopes and the identity pivot claims each one releases."""

from __future__ import annotations

from typing import Final

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
# The tax administration's data scopes (DESIGN, SPEC §7.1): consented at the federation,
# checked by the provider, never released by the federation itself.
DATA_SCOPES: Final = frozenset(
    {
        "dgfip_rfr",
        "dgfip_nbpart",
        "dgfip_sitfam",
        "dgfip_pac",
        "dgfip_aft",
        "dgfip_decl",
        "dgfip_pariso",
        "dgfip_inddeficit",
        "dgfip_locaux_th",
        "dgfip_mntRevbareme",
        "dgfip_rns",
        "dgfip_pensalper",
        "dgfip_rbg",
        "dgfip_rev_monde",
        # The IR bill, the IFI and the principal housing tax's address and payers (the LEP
        # check has no FranceConnect mode).
        "dgfip_ir_facture",
        "dgfip_ifi",
        "dgfip_adresse_th",
        "dgfip_redevables_th",
        "dgfip_annee_n_moins_1",
        "dgfip_annee_n_moins_2",
        "dgfip_annee_n_moins_3",
        "dgfip_annee_n_moins_2_si_indispo_n_moins_1",
    }
)
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

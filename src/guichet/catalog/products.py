"""The provider's API products, described once and read by the gateway, docs and portal.

Every field of the IR "assiettes" record belongs to exactly one data scope
(``IR_FIELD_SCOPES``); ``docs/catalogue.md`` shows the same table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class Operation:
    """One route of an API: its name in the journal, and the resource scope it needs."""

    name: str
    path: str
    resource_scope: str
    access_mode: str | None  # "spi", "franceconnect", or None (not person-designated)


@dataclass(frozen=True, slots=True)
class ApiProduct:
    key: str
    name: str
    base_path: str
    default_quota_per_minute: int
    media_type: str
    operations: tuple[Operation, ...]
    data_scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def resource_scopes(self) -> frozenset[str]:
        return frozenset(op.resource_scope for op in self.operations)


IR_MEDIA_TYPE: Final = "application/prs.dgfip.part.situations.ir.assiettes.v1+json"

# Field (top-level, or "rev.<category>") → the one data scope that releases it.
IR_FIELD_SCOPES: Final = MappingProxyType(
    {
        "rfr": "dgfip_rfr",
        "nbPart": "dgfip_nbpart",
        "sitPart": "dgfip_nbpart",
        "sitParDeclaree": "dgfip_nbpart",
        "sitFam": "dgfip_sitfam",
        "indOptionImpotSepar": "dgfip_sitfam",
        "pac": "dgfip_pac",
        "nmNaiDec1": "dgfip_decl",
        "nmUsaDec1": "dgfip_decl",
        "prnmDec1": "dgfip_decl",
        "dateNaisDec1": "dgfip_decl",
        "dptNaissDec1": "dgfip_decl",
        "lieuNaissDec1": "dgfip_decl",
        "nmNaiDec2": "dgfip_decl",
        "nmUsaDec2": "dgfip_decl",
        "prnmDec2": "dgfip_decl",
        "dateNaisDec2": "dgfip_decl",
        "dptNaissDec2": "dgfip_decl",
        "lieuNaissDec2": "dgfip_decl",
        "aft": "dgfip_aft",
        "aftDetail": "dgfip_aft",
        "sitParIso": "dgfip_pariso",
        "pensAlPer": "dgfip_pensalper",
        "indDeficit": "dgfip_inddeficit",
        "revenuBrutGlobal": "dgfip_rbg",
        "mntRevbareme": "dgfip_mntRevbareme",
        "revImposable": "dgfip_revimposable",
        "impAvImput": "dgfip_montantimpot",
        "montTotIr": "dgfip_montantimpot",
        "datRec": "dgfip_recouvrement",
        "datEtab": "dgfip_recouvrement",
        "numRole": "dgfip_recouvrement",
        "fipNum": "dgfip_recouvrement",
        "rev.tspr": "dgfip_rns",
        "rev.rcm": "dgfip_rns",
        "rev.pv": "dgfip_rns",
        "rev.fonc": "dgfip_rns",
        "rev.pro": "dgfip_rns",
        "rev.chges": "dgfip_rns",
        "rev.rici": "dgfip_rns",
        "rev.alpha": "dgfip_rns",
        "rev.div": "dgfip_rev_monde",
    }
)

IR_DATA_SCOPES: Final = frozenset(IR_FIELD_SCOPES.values()) | {"dgfip_locaux_th"}

# Revenue-year scopes: offset from the current year [DESIGN, dgfip_annee_n_moins_*].
YEAR_SCOPES: Final = MappingProxyType(
    {
        "dgfip_annee_n_moins_1": 1,
        "dgfip_annee_n_moins_2": 2,
        "dgfip_annee_n_moins_3": 3,
    }
)
YEAR_FALLBACK_SCOPE: Final = "dgfip_annee_n_moins_2_si_indispo_n_moins_1"

_IP = "/impotparticulier/1.0"

IMPOT_PARTICULIER: Final = ApiProduct(
    key="impot_particulier",
    name="API Impôt Particulier",
    base_path=_IP,
    default_quota_per_minute=120,
    media_type=IR_MEDIA_TYPE,
    data_scopes=IR_DATA_SCOPES,
    operations=(
        Operation(
            "ir_assiettes_spi",
            "/spi/{spi}/situations/ir/assiettes/annrev/{annrev}",
            "RessourceIR",
            "spi",
        ),
        Operation(
            "ir_assiettes_multiple_spi",
            "/spi/{spi}/situations/ir/assiettes/multiple/annrev/{annrev}",
            "RessourceIRMultiple",
            "spi",
        ),
        Operation(
            "ir_derniere_situation_spi",
            "/spi/{spi}/dernieresituation/ir/assiettes/annrev/{annrev}",
            "RessourceIRDerniere",
            "spi",
        ),
        Operation(
            "ir_derniere_situation_deuxans_spi",
            "/spi/{spi}/dernieresituation/ir/assiettes/deuxans",
            "RessourceIRDerniere2",
            "spi",
        ),
    ),
)

R2P: Final = ApiProduct(
    key="r2p",
    name="API R2P (état civil → SPI)",
    base_path="/r2p/v1",
    default_quota_per_minute=120,
    media_type="application/json",
    operations=(
        Operation("r2p_personne_spi", "/personne/spi", "RessourceR2P", None),
        Operation("r2p_personne_recherche", "/personne", "RessourceR2P", None),
        Operation("r2p_personne", "/personne/{spi}", "RessourceR2P", None),
    ),
)

PRODUCTS: Final = MappingProxyType({p.key: p for p in (IMPOT_PARTICULIER, R2P)})

# Every resource scope a client may hold, whichever product grants it.
RESOURCE_SCOPES: Final = frozenset().union(*(p.resource_scopes for p in PRODUCTS.values()))


def product(key: str) -> ApiProduct:
    try:
        return PRODUCTS[key]
    except KeyError:
        raise ValueError(f"unknown API product {key!r}") from None

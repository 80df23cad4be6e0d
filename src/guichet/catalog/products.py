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

# The product's root: the APIM contract lives under ``/1.0``, the convention's older OS
# contract [003 annexe 3 §3.2] directly under it (``/impotparticulier/os{X}/{ANNEE}``).
_IP = "/impotparticulier"
_V1 = "/1.0"

# The IR "assiettes" resources: (name stem, path after the person, resource scope).
_IR_RESOURCES: Final = (
    ("ir_assiettes", "/situations/ir/assiettes/annrev/{annrev}", "RessourceIR"),
    (
        "ir_assiettes_multiple",
        "/situations/ir/assiettes/multiple/annrev/{annrev}",
        "RessourceIRMultiple",
    ),
    (
        "ir_derniere_situation",
        "/dernieresituation/ir/assiettes/annrev/{annrev}",
        "RessourceIRDerniere",
    ),
    (
        "ir_derniere_situation_deuxans",
        "/dernieresituation/ir/assiettes/deuxans",
        "RessourceIRDerniere2",
    ),
)


@dataclass(frozen=True, slots=True)
class OfferOfService:
    """One OS of the convention's FranceConnect contract [003 annexe 3 §5]."""

    number: int
    operation: str
    label: str
    data_scopes: tuple[str, ...]
    resource_scope: str = "RessourceIR"


OFFERS_OF_SERVICE: Final = (
    OfferOfService(1, "os1_rfr", "RFR et nombre de parts", ("dgfip_rfr", "dgfip_nbpart")),
    OfferOfService(2, "os2_aft", "Adresse fiscale de taxation à l'IR", ("dgfip_aft",)),
    OfferOfService(3, "os3_rns", "Revenus non salariaux", ("dgfip_rns",)),
    OfferOfService(
        4,
        "os4_sitfam",
        "Situation de famille",
        ("dgfip_sitfam", "dgfip_pac", "dgfip_decl", "dgfip_pariso"),
    ),
    OfferOfService(5, "os5_pensalper", "Pensions alimentaires perçues", ("dgfip_pensalper",)),
    OfferOfService(6, "os6_inddeficit", "Existence d'un déficit", ("dgfip_inddeficit",)),
    OfferOfService(7, "os7_locaux_th", "Données TH", ("dgfip_locaux_th",), "RessourceTHPrincipale"),
    OfferOfService(8, "os8_rbg", "Revenu brut global", ("dgfip_rbg",)),
    OfferOfService(9, "os9_rev_monde", "Revenus mondiaux", ("dgfip_rev_monde",)),
)

IMPOT_PARTICULIER: Final = ApiProduct(
    key="impot_particulier",
    name="API Impôt Particulier",
    base_path=_IP,
    default_quota_per_minute=120,
    media_type=IR_MEDIA_TYPE,
    data_scopes=IR_DATA_SCOPES,
    operations=(
        # By SPI [004 CGU §4].
        *(
            Operation(f"{n}_spi", f"{_V1}/spi/{{spi}}{p}", scope, "spi")
            for n, p, scope in _IR_RESOURCES
        ),
        # FranceConnect mode: the citizen's federation token in ``X-FranceConnect-OAuth``.
        *(
            Operation(f"{n}_fc", f"{_V1}{p}", scope, "franceconnect")
            for n, p, scope in _IR_RESOURCES
        ),
        # The convention's OS contract, a compatibility surface over the same checks.
        *(
            Operation(o.operation, f"/os{o.number}/{{annee}}", o.resource_scope, "franceconnect")
            for o in OFFERS_OF_SERVICE
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

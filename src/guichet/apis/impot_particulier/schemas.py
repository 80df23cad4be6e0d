"""The provider's response schemas, as property lists: what each answer may carry.

Restated from the provider's OpenAPI document for API Impôt Particulier (``components.schemas``,
the ``…JAXBbean`` names) — never read from it at run time. An answer is the stored record
projected on its operation's schema (``project``): a property the schema lacks is dropped, and
so is a value that does not exist (``None``), except the four values the convention declares
nullable [003 annexe 3 §5: "ou null"], which stay ``null``. The data scopes are applied after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class Schema:
    """One of the provider's object schemas: its property names, in the document's order, and
    the schema of each property that is an object or an array of objects."""

    name: str
    properties: tuple[str, ...]
    nested: Mapping[str, Schema] = field(default_factory=dict)


# --- the nested objects ----------------------------------------------------------------

PAC: Final = Schema(
    "PacJAXBbean",
    ("nbPac", "nbPacF", "nbPacG", "nbPacH", "nbPacI", "nbPacR", "nbPacJ", "nbPacN", "nbPacP"),
)
DATE_NAIS_DEC: Final = Schema("DateNaisDecJAXBbean", ("jour", "mois", "annee"))
AFT: Final = Schema("AftJAXBbean", ("complementAdresse", "voie", "getcommune", "getcodePostal"))
SIT_PART: Final = Schema(
    "SitPartJAXBbean",
    (
        "sitPartP",
        "sitPartF",
        "sitPartW",
        "sitComb",
        "pensVeufGuerre",
        "indEnfSeul5ansMin",
        "indNonSeul",
    ),
)
CODE_REV: Final = Schema("CodeRevJAXBbean", ("code", "valeur"))
REV_CATEGORIES: Final = ("tspr", "rcm", "pv", "fonc", "pro", "chges", "rici", "alpha", "div")
REVS: Final = Schema("RevsJAXBbean", REV_CATEGORIES, {c: CODE_REV for c in REV_CATEGORIES})
FACTURE_LINE: Final = Schema(
    "SituationIRfactureJAXBbean",
    ("numLigne", "codeLigne", "libelleLigne", "colonne1", "colonne2", "colonne3", "colonne4"),
)
LOC_TH: Final = Schema("LocTHJAXBbean", ("natureLocal", "affectation", "invariant"))

_IR_NESTED: Final = {
    "pac": PAC,
    "dateNaisDec1": DATE_NAIS_DEC,
    "dateNaisDec2": DATE_NAIS_DEC,
    "aftDetail": AFT,
    "sitParDeclaree": SIT_PART,
    "rev": REVS,
    "facture": FACTURE_LINE,
}

# --- the IR situations ----------------------------------------------------------------

_DECLARANTS: Final = (
    "nmNaiDec1",
    "nmUsaDec1",
    "prnmDec1",
    "dateNaisDec1",
    "dptNaissDec1",
    "lieuNaissDec1",
    "nmNaiDec2",
    "nmUsaDec2",
    "prnmDec2",
    "dateNaisDec2",
    "dptNaissDec2",
    "lieuNaissDec2",
)
_RECOUVREMENT: Final = (
    "datRec",
    "datEtab",
    "impAvImput",
    "montTotIr",
    "revImposable",
    "numRole",
    "fipNum",
)

# ``SituationsIRAssiettesJAXBbean``: ``…/situations/ir/assiettes/annrev/{annrev}``.
IR_ASSIETTES_PROPERTIES: Final = (
    "rfr",
    "sitFam",
    "nbPart",
    "pac",
    *_DECLARANTS,
    "aft",
    "aftDetail",
    "sitParIso",
    "pensAlPer",
    "indDeficit",
    "revenuBrutGlobal",
    "sitPart",
    "sitParDeclaree",
    "indOptionImpotSepar",
    "mntRevbareme",
    *_RECOUVREMENT,
    "rev",
)
# ``SituationIRAssietteMultiJAXBbean``: each item of ``situationsIR`` (``…/multiple/…``), the
# superset, which is also the stored record's shape.
IR_MULTI_PROPERTIES: Final = (
    "rfr",
    "sitFam",
    "nbPart",
    "pac",
    *_DECLARANTS,
    "aft",
    "aftDetail",
    "sitParIso",
    "pensAlPer",
    "indDeficit",
    "revenuBrutGlobal",
    "rev",
    "sitPart",
    "sitParDeclaree",
    "indOptionImpotSepar",
    "mntRevbareme",
    "spiDec1",
    "spiDec2",
    *_RECOUVREMENT,
    "dateDebutPeriode",
    "dateFinPeriode",
    "typeAvis",
    "dateDecesdec1",
    "dateDecesdec2",
)
# ``SituationsIRAssiettesMillesimeJAXBbean``: ``dernieresituation/…`` and ``…/deuxans``;
# ``annRevenu`` is the situation's revenue year (not a stored field: the ``annrev`` column).
ANN_REVENU: Final = "annRevenu"
IR_MILLESIME_PROPERTIES: Final = (ANN_REVENU, *IR_ASSIETTES_PROPERTIES)
# ``SituationsIRAssiettesFacturesJAXBbean``: ``…/situations/ir/factures/…``.
IR_FACTURES_PROPERTIES: Final = (*IR_ASSIETTES_PROPERTIES[:-1], "facture", "rev")


def _ir(name: str, properties: tuple[str, ...]) -> Schema:
    return Schema(name, properties, {k: v for k, v in _IR_NESTED.items() if k in properties})


IR_ASSIETTES: Final = _ir("SituationsIRAssiettesJAXBbean", IR_ASSIETTES_PROPERTIES)
IR_MULTI: Final = _ir("SituationIRAssietteMultiJAXBbean", IR_MULTI_PROPERTIES)
IR_MILLESIME: Final = _ir("SituationsIRAssiettesMillesimeJAXBbean", IR_MILLESIME_PROPERTIES)
IR_FACTURES: Final = _ir("SituationsIRAssiettesFacturesJAXBbean", IR_FACTURES_PROPERTIES)
# ``SituationsIRAssiettesMultipleJAXBbean``'s one member.
SITUATIONS_IR: Final = "situationsIR"

# --- the other resources ---------------------------------------------------------------

IFI_ISF: Final = Schema("SituationIfiIsfJAXBbean", ("indicateurIfiIsf",))
SITUATION_TH: Final = Schema(
    "SituationTHJAXBbean",
    (
        "codeDsf",
        "codeCommune",
        "codeAft",
        "numVoie",
        "btq",
        "libelleVoie",
        "libelleCommune",
        "regimeTax",
        "natureImp",
        "libelleEdition1",
        "libelleEdition2",
        "locaux",
    ),
    {"locaux": LOC_TH},
)
# ``SituationsTHJAXBbean``'s one member.
SITUATIONS_TH: Final = "situationsTH"
OUVERTURE_LEP: Final = Schema("OuvertureLepJAXBbean", ("statut",))

# The values the convention lets be ``null`` [003 annexe 3 §5.1, §5.4, §5.8]; every other value
# that does not exist is omitted.
NULLABLE: Final = frozenset({"rfr", "sitFam", "sitParIso", "revenuBrutGlobal"})


def project(record: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """``record`` limited to ``schema``'s properties, in the schema's order, nested objects
    and arrays of objects alike; a ``None`` is dropped unless the property is ``NULLABLE``
    (at the top level, where the convention declares it)."""
    out: dict[str, Any] = {}
    for name in schema.properties:
        if name not in record:
            continue
        value = record[name]
        if value is None:
            if name in NULLABLE:
                out[name] = None
            continue
        sub = schema.nested.get(name)
        if sub is not None:
            value = _nested(value, sub)
        out[name] = value
    return out


def _nested(value: Any, schema: Schema) -> Any:
    if isinstance(value, Mapping):
        return _clean(value, schema)
    if isinstance(value, list):
        return [_clean(item, schema) if isinstance(item, Mapping) else item for item in value]
    return value


def _clean(value: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """A nested object: its schema's properties, no ``None`` (nothing nullable below the top)."""
    out: dict[str, Any] = {}
    for name in schema.properties:
        item = value.get(name)
        if item is None:
            continue
        sub = schema.nested.get(name)
        out[name] = item if sub is None else _nested(item, sub)
    return out

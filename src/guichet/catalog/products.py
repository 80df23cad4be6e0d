"""The provider's API products, described once and read by the gateway, docs and portal.

Every field a resource returns belongs to exactly one data scope: ``IR_FIELD_SCOPES`` for
the IR "assiettes" record, ``FACTURE_FIELD_SCOPES``, ``IFI_FIELD_SCOPES``,
``TH_FIELD_SCOPES`` and ``LEP_FIELD_SCOPES`` for the other resources, and
``DATA_SCOPE_LABELS`` names each scope; ``docs/catalogue.md`` shows the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class Operation:
    """One route of an API: its name in the journal (``name``, guichet's), the provider's
    ``operationId`` (``operation_id``: the name a client generated from the provider's
    document knows it by), the resource scope it needs and the media type of its answer.

    ``method`` is the route's HTTP method; an operation taking a body (``max_body_bytes``
    above 0) takes it in ``request_media_type`` only (415 otherwise), at most that many
    bytes (413 beyond, counted as it streams in). A ``health`` operation is a health check:
    its 503 (closed, maintenance) says so in the provider's health-check error shape."""

    name: str
    path: str
    resource_scope: str
    access_mode: str | None  # "spi", "franceconnect", or None (not person-designated)
    operation_id: str
    media_type: str
    # The provider's ``codeapp`` for any 403 of this operation (LEP: 4031), else None.
    forbidden_codeapp: int | None = None
    method: str = "GET"
    max_body_bytes: int = 0  # 0: no body
    request_media_type: str | None = None
    health: bool = False


@dataclass(frozen=True, slots=True)
class ApiProduct:
    key: str
    name: str
    base_path: str
    default_quota_per_minute: int
    media_type: str
    operations: tuple[Operation, ...]
    data_scopes: frozenset[str] = field(default_factory=frozenset)
    # How the gateway answers a refusal: RFC 9457 problem+json ("problem"), or the
    # provider's ``ReponseErreur`` of its document ("reponse_erreur", API FICOBA).
    error_format: str = "problem"
    # Request headers every call must carry besides X-Correlation-ID (400 without).
    required_headers: tuple[str, ...] = ()
    # A client certificate issued by an authority (never a self-signed one, even pinned in
    # the habilitation): API FICOBA's strong authentication (DICP C4 [002]).
    authority_certificate_required: bool = False

    @property
    def resource_scopes(self) -> frozenset[str]:
        return frozenset(op.resource_scope for op in self.operations)


# Each answer's media type, as the provider's OpenAPI document names it per operation.
IR_MEDIA_TYPE: Final = "application/prs.dgfip.part.situations.ir.assiettes.v1+json"
IR_MULTIPLE_MEDIA_TYPE: Final = (
    "application/prs.dgfip.part.situations.ir.assiettes.multiple.v1+json"
)
# ``dernieresituation/…/annrev/{annrev}`` and ``…/deuxans`` alike.
IR_DERNIERE_MEDIA_TYPE: Final = (
    "application/prs.dgfip.part.derniere.situations.ir.assiettes.v1+json"
)
FACTURE_MEDIA_TYPE: Final = "application/prs.dgfip.part.situations.ir.factures.v1+json"
IFI_MEDIA_TYPE: Final = "application/prs.dgfip.situations.ifiisf.assiettes.v1+json"
TH_MEDIA_TYPE: Final = "application/prs.dgfip.part.situations.th.assiettes.v1+json"
LEP_MEDIA_TYPE: Final = "application/prs.dgfip.part.ouverturelep.v1+json"

# Field (top-level, or "rev.<category>") → the one data scope that releases it.
IR_FIELD_SCOPES: Final = MappingProxyType(
    {
        "rfr": "dgfip_rfr",
        "nbPart": "dgfip_nbpart",
        "sitPart": "dgfip_nbpart",
        "sitParDeclaree": "dgfip_nbpart",
        "sitFam": "dgfip_sitfam",
        "indOptionImpotSepar": "dgfip_sitfam",
        # The situation's period follows the family situation (a marriage, a divorce or a
        # death splits the year), and so does the kind of notice.
        "dateDebutPeriode": "dgfip_sitfam",
        "dateFinPeriode": "dgfip_sitfam",
        "typeAvis": "dgfip_sitfam",
        "pac": "dgfip_pac",
        "spiDec1": "dgfip_decl",
        "spiDec2": "dgfip_decl",
        "dateDecesdec1": "dgfip_decl",
        "dateDecesdec2": "dgfip_decl",
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

# The IR bill (``…/situations/ir/factures/…``): the IR record above, plus the lines of the
# notice [provider's OpenAPI, ``SituationsIRAssiettesFacturesJAXBbean.facture``].
FACTURE_FIELD_SCOPES: Final = MappingProxyType({"facture": "dgfip_ir_facture"})

# The wealth tax on real estate (IFI, ISF before 2018) declared with the income of ``annrev``:
# the provider's indicator, and nothing else [``SituationIfiIsfJAXBbean.indicateurIfiIsf``].
IFI_FIELD_SCOPES: Final = MappingProxyType({"indicateurIfiIsf": "dgfip_ifi"})

# One principal housing-tax assessment [``SituationTHJAXBbean``]: what is taxed (as OS7),
# where, and in whose name.
TH_FIELD_SCOPES: Final = MappingProxyType(
    {
        "regimeTax": "dgfip_locaux_th",
        "natureImp": "dgfip_locaux_th",
        "locaux": "dgfip_locaux_th",
        "codeDsf": "dgfip_adresse_th",
        "codeCommune": "dgfip_adresse_th",
        "codeAft": "dgfip_adresse_th",
        "numVoie": "dgfip_adresse_th",
        "btq": "dgfip_adresse_th",
        "libelleVoie": "dgfip_adresse_th",
        "libelleCommune": "dgfip_adresse_th",
        "libelleEdition1": "dgfip_redevables_th",
        "libelleEdition2": "dgfip_redevables_th",
    }
)

# The livret d'épargne populaire check [``OuvertureLepJAXBbean.statut``]: "O" or "N".
LEP_FIELD_SCOPES: Final = MappingProxyType({"statut": "dgfip_eligibilite_lep"})

IR_DATA_SCOPES: Final = frozenset(
    {
        *IR_FIELD_SCOPES.values(),
        *FACTURE_FIELD_SCOPES.values(),
        *IFI_FIELD_SCOPES.values(),
        *TH_FIELD_SCOPES.values(),
        *LEP_FIELD_SCOPES.values(),
    }
)

# Each data scope in plain French: the consent page's default label and the portal's.
DATA_SCOPE_LABELS: Final = MappingProxyType(
    {
        "dgfip_rfr": "Revenu fiscal de référence (RFR)",
        "dgfip_nbpart": "Nombre de parts du foyer fiscal",
        "dgfip_sitfam": (
            "Situation de famille (marié, pacsé, célibataire, veuf, divorcé), période de la "
            "situation dans l'année et type d'avis"
        ),
        "dgfip_pac": "Nombre de personnes à charge",
        "dgfip_decl": (
            "Identité des déclarants (numéros fiscaux, noms, prénoms, dates et lieux de "
            "naissance, dates de décès)"
        ),
        "dgfip_aft": "Adresse fiscale de taxation au 1er janvier",
        "dgfip_pariso": "Parent isolé (case T)",
        "dgfip_pensalper": "Montant des pensions alimentaires perçues",
        "dgfip_inddeficit": "Existence d'un déficit",
        "dgfip_rbg": "Revenu brut global",
        "dgfip_mntRevbareme": "Montant des revenus soumis au barème",
        "dgfip_revimposable": "Revenu imposable",
        "dgfip_montantimpot": "Montant de l'impôt sur le revenu",
        "dgfip_recouvrement": "Données de recouvrement de l'impôt (dates, numéro de rôle)",
        "dgfip_rns": (
            "Détail des revenus par catégorie (salaires, pensions, revenus non salariaux…)"
        ),
        "dgfip_rev_monde": "Revenus mondiaux",
        "dgfip_locaux_th": "Données du logement soumis à la taxe d'habitation",
        "dgfip_ir_facture": (
            "Facture de l'impôt sur le revenu (montants, dates de mise en recouvrement et "
            "limite de paiement, reste à payer)"
        ),
        "dgfip_ifi": "Assujettissement à l'impôt sur la fortune immobilière (IFI)",
        "dgfip_adresse_th": "Adresse de la résidence principale (taxe d'habitation)",
        "dgfip_redevables_th": "Nom des redevables de la taxe d'habitation",
        "dgfip_eligibilite_lep": "Éligibilité au livret d'épargne populaire (LEP)",
    }
)

# Revenue-year scopes: offset from the current year [DESIGN, dgfip_annee_n_moins_*].
YEAR_SCOPES: Final = MappingProxyType(
    {
        "dgfip_annee_n_moins_1": 1,
        "dgfip_annee_n_moins_2": 2,
        "dgfip_annee_n_moins_3": 3,
    }
)
YEAR_FALLBACK_SCOPE: Final = "dgfip_annee_n_moins_2_si_indispo_n_moins_1"

# The data and year scopes FranceConnect v2 carries (DESIGN, SPEC §7.1): consented at the
# federation, checked by the provider, never released by the federation itself
# (``guichet.federation.scopes.DATA_SCOPES``).
FRANCECONNECT_DATA_SCOPES: Final = frozenset(
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

# The product's root: the APIM contract lives under ``/1.0``, the convention's older OS
# contract [003 annexe 3 §3.2] directly under it (``/impotparticulier/os{X}/{ANNEE}``).
_IP = "/impotparticulier"
_V1 = "/1.0"


@dataclass(frozen=True, slots=True)
class PersonResource:
    """A resource of a person and a year, in both access modes: guichet's name stem, its
    path after the person, its resource scope, the provider's ``operationId`` by SPI and in
    FranceConnect mode, and its answer's media type."""

    stem: str
    path: str
    resource_scope: str
    spi_operation_id: str
    fc_operation_id: str
    media_type: str


# The IR "assiettes" resources, then the other resources [provider's OpenAPI document].
PERSON_RESOURCES: Final = (
    PersonResource(
        "ir_assiettes",
        "/situations/ir/assiettes/annrev/{annrev}",
        "RessourceIR",
        "SituationsIrAssiettesV1",
        "SituationsIrAssiettesFCV1",
        IR_MEDIA_TYPE,
    ),
    PersonResource(
        "ir_assiettes_multiple",
        "/situations/ir/assiettes/multiple/annrev/{annrev}",
        "RessourceIRMultiple",
        "SituationsIrAssiettesMultipleV1",
        "SituationsIrAssiettesMultipleFCV1",
        IR_MULTIPLE_MEDIA_TYPE,
    ),
    PersonResource(
        "ir_derniere_situation",
        "/dernieresituation/ir/assiettes/annrev/{annrev}",
        "RessourceIRDerniere",
        "derniereSituationsIrAssiettesV1",
        "derniereSituationsIrAssiettesFCV1",
        IR_DERNIERE_MEDIA_TYPE,
    ),
    PersonResource(
        "ir_derniere_situation_deuxans",
        "/dernieresituation/ir/assiettes/deuxans",
        "RessourceIRDerniere2",
        "situationsIrAssiettesDeuxDernierMillesimeV1",
        "situationsIrAssiettesDeuxDernierMillesimeFCV1",
        IR_DERNIERE_MEDIA_TYPE,
    ),
    PersonResource(
        "ir_factures",
        "/situations/ir/factures/annrev/{annrev}",
        "RessourceIRFacture",
        "SituationsIrFacturesV1",
        "SituationsIrFacturesFCV1",
        FACTURE_MEDIA_TYPE,
    ),
    PersonResource(
        "ifi_assiettes",
        "/situations/ifiisf/assiettes/annrev/{annrev}",
        "RessourceIFI",
        "SituationIfiIsfV1",
        "SituationIfiIsfFCV1",
        IFI_MEDIA_TYPE,
    ),
    PersonResource(
        "th_principale",
        "/situations/th/assiettes/principale/annrev/{annrev}",
        "RessourceTHPrincipale",
        "SituationsTHPV1",
        "SituationsTHPFCV1",
        TH_MEDIA_TYPE,
    ),
)
# The LEP check exists by SPI only [provider's OpenAPI, ``Ouverturelep``].
_LEP_PATH: Final = "/lep/departement/{departement}/annrev/{annrev}/bareme/{bareme}"
# "codeapp 4031 : L'utilisateur n'a pas accès à la ressource" [provider's OpenAPI, 403].
LEP_FORBIDDEN_CODEAPP: Final = 4031
# The convention's OS contract answers plain JSON [003 annexe 3 §5: "Au format JSON"].
OS_MEDIA_TYPE: Final = "application/json"


@dataclass(frozen=True, slots=True)
class OfferOfService:
    """One OS of the convention's FranceConnect contract [003 annexe 3 §5]."""

    number: int
    operation: str
    label: str
    data_scopes: tuple[str, ...]
    resource_scope: str = "RessourceIR"

    @property
    def operation_id(self) -> str:
        """guichet's ``operationId`` (the convention names none): the journal's name,
        ``os1_rfr`` … ``os9_rev_monde``."""
        return self.operation


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
            Operation(
                f"{r.stem}_spi",
                f"{_V1}/spi/{{spi}}{r.path}",
                r.resource_scope,
                "spi",
                r.spi_operation_id,
                r.media_type,
            )
            for r in PERSON_RESOURCES
        ),
        Operation(
            "lep_spi",
            f"{_V1}/spi/{{spi}}{_LEP_PATH}",
            "RessourceLEP",
            "spi",
            "Ouverturelep",
            LEP_MEDIA_TYPE,
            forbidden_codeapp=LEP_FORBIDDEN_CODEAPP,
        ),
        # FranceConnect mode: the citizen's federation token in ``X-FranceConnect-OAuth``.
        *(
            Operation(
                f"{r.stem}_fc",
                f"{_V1}{r.path}",
                r.resource_scope,
                "franceconnect",
                r.fc_operation_id,
                r.media_type,
            )
            for r in PERSON_RESOURCES
        ),
        # The convention's OS contract, a compatibility surface over the same checks.
        *(
            Operation(
                o.operation,
                f"/os{o.number}/{{annee}}",
                o.resource_scope,
                "franceconnect",
                o.operation_id,
                OS_MEDIA_TYPE,
            )
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
        Operation(
            "r2p_personne_spi",
            "/personne/spi",
            "RessourceR2P",
            None,
            "RechercheParEtatCivil",
            "application/json",
        ),
        Operation(
            "r2p_personne_recherche",
            "/personne",
            "RessourceR2P",
            None,
            "RechercheParCriteres",
            "application/json",
        ),
        Operation(
            "r2p_personne",
            "/personne/{spi}",
            "RessourceR2P",
            None,
            "RechercheParSPI",
            "application/json",
        ),
    ),
)

# API FICOBA v2 [002; the provider's document ``FICOBA_API``]: a health check and seven
# searches, each a POST of a JSON ``DemandeRestit…``; one resource scope per search.
FICOBA_MEDIA_TYPE: Final = "application/json"
FICOBA_MAX_BODY_BYTES: Final = 16 * 1024  # the largest criteria fit in 2 KiB


def _ficoba_search(name: str, path: str, scope: str, operation_id: str) -> Operation:
    return Operation(
        name,
        path,
        scope,
        None,
        operation_id,
        FICOBA_MEDIA_TYPE,
        method="POST",
        max_body_bytes=FICOBA_MAX_BODY_BYTES,
        request_media_type=FICOBA_MEDIA_TYPE,
    )


# [002 §4] the eleven search types of API FICOBA, as the journal names them; the convention
# habilitates per search type, so each is granted by its own data scope,
# ``ficoba_recherche_<type>`` (``FICOBA_SEARCH_SCOPES``): a habilitation's ``data_scopes``
# hold those chosen, and the handlers refuse a search of any other type (403).
FICOBA_SEARCH_TYPES: Final = (
    "personne_physique",
    "personne_morale",
    "compte",
    "siren_siret",
    "spi",
    "verification_iban_personne_physique",
    "verification_iban_personne_morale",
    "verification_iban_siret",
    "multi_detention_personne_physique",
    "multi_detention_personne_morale",
    "multi_detention_siret",
)
FICOBA_SEARCH_SCOPES: Final = MappingProxyType(
    {kind: f"ficoba_recherche_{kind}" for kind in FICOBA_SEARCH_TYPES}
)
# What a FICOBA habilitation may grant: one data scope per search type.
FICOBA_DATA_SCOPES: Final = frozenset(FICOBA_SEARCH_SCOPES.values())
# What each kind of answer releases, journaled as the data scopes returned (never granted:
# until migration 0019 a habilitation held these three, each for several search types).
FICOBA_RELEASED_SCOPES: Final = MappingProxyType(
    {
        "ficoba_comptes": FICOBA_SEARCH_TYPES[:5],
        "ficoba_verification_iban": FICOBA_SEARCH_TYPES[5:8],
        "ficoba_multi_detention": FICOBA_SEARCH_TYPES[8:],
    }
)

FICOBA: Final = ApiProduct(
    key="ficoba",
    name="API FICOBA (fichier national des comptes bancaires)",
    base_path="/fcb-masrestit/api/v2",
    default_quota_per_minute=200,  # [002 §9.2]
    media_type=FICOBA_MEDIA_TYPE,
    data_scopes=FICOBA_DATA_SCOPES,
    error_format="reponse_erreur",
    required_headers=("X-Request-ID",),
    authority_certificate_required=True,
    operations=(
        Operation(
            "ficoba_etat_sante",
            "/etatSante",
            "RessourceFicobaSante",
            None,
            "getInfo",
            FICOBA_MEDIA_TYPE,
            health=True,
        ),
        _ficoba_search(
            "ficoba_num_cpte",
            "/comptes/numCpte",
            "RessourceFicobaCompte",
            "rechercherCompteParNumCpte",
        ),
        _ficoba_search(
            "ficoba_siret_siren",
            "/comptes/siretSiren",
            "RessourceFicobaSiretSiren",
            "rechercherCompteParSiretSiren",
        ),
        _ficoba_search("ficoba_spi", "/comptes/spi", "RessourceFicobaSpi", "rechercherComptesSpi"),
        _ficoba_search(
            "ficoba_per_phy",
            "/comptes/perPhy",
            "RessourceFicobaPerPhy",
            "rechercherComptesPersonnePhysique",
        ),
        _ficoba_search(
            "ficoba_per_pro",
            "/comptes/perPro",
            "RessourceFicobaPerPro",
            "rechercherComptesPerPro",
        ),
        _ficoba_search(
            "ficoba_multi_det",
            "/comptes/multiDet",
            "RessourceFicobaMultiDet",
            "rechercherMultiDetention",
        ),
        _ficoba_search(
            "ficoba_verif_iban",
            "/comptes/verifIban",
            "RessourceFicobaVerifIban",
            "rechercherCompteParNumCpte_1",
        ),
    ),
)

PRODUCTS: Final = MappingProxyType({p.key: p for p in (IMPOT_PARTICULIER, R2P, FICOBA)})

# Every resource scope a client may hold, whichever product grants it.
RESOURCE_SCOPES: Final = frozenset().union(*(p.resource_scopes for p in PRODUCTS.values()))


def product(key: str) -> ApiProduct:
    try:
        return PRODUCTS[key]
    except KeyError:
        raise ValueError(f"unknown API product {key!r}") from None

"""A fictive tax household and the rows it becomes: ``person``, IR "assiettes" records with
their notice, and the heading of its housing-tax assessments.

Records have the provider's shapes (``guichet.records.ir_record``): a value that does not
exist is omitted, never ``null``, except the four the convention declares nullable."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from guichet.records.geography import COMMUNES_BY_COG, COUNTRIES_BY_COG, FRANCE, adresse_reponse
from guichet.records.names import canonical_name
from guichet.sandbox.fiscal import (
    COUPLE,
    RECOVERY_THRESHOLD,
    Pac,
    facture_lines,
    parts,
    tax_before_credits,
)

_VOIE = re.compile(r"^(\d{1,5})\s*(bis|ter|quater|[BTQ])?\s+(.+)$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Address:
    voie: str  # number and street, ≤ 37 characters
    commune_cog: str
    complement: str | None = None

    def as_person(self) -> dict[str, Any]:
        """The person's address as R2P answers it (``AdresseReponse``: codes and labels, no
        postal code nor complement)."""
        return adresse_reponse(voie=self.voie, commune=self.commune_cog)

    def as_aft(self) -> tuple[str, dict[str, Any]]:
        """``aft`` (one line, ≤ 132 characters) and ``aftDetail`` as the provider sends them."""
        commune = COMMUNES_BY_COG[self.commune_cog]
        code_postal = f"{commune.postal_code} {commune.name}"[:32]
        parts = [self.voie, self.complement or "", commune.name, code_postal]
        aft = " ".join(p for p in parts if p)[:132]
        detail = {"complementAdresse": self.complement} if self.complement else {}
        return aft, detail | {
            "voie": self.voie,
            "getcommune": commune.name,
            "getcodePostal": code_postal,
        }

    def th_heading(self, payers: tuple[Declarant, ...], code_aft: str) -> dict[str, Any]:
        """A housing-tax notice's heading for premises at this address (``ThHeading``):
        the tax office and commune codes, the street split as the notice prints it, and
        the payers' names; a value that does not exist (``btq``…) is omitted."""
        commune = COMMUNES_BY_COG[self.commune_cog]
        match = _VOIE.match(self.voie)
        number, repeat, street = match.groups() if match else (None, None, self.voie)
        department = commune.department
        heading = {
            "codeDsf": (department + "0")[:3] if len(department) == 2 else department,
            "codeCommune": self.commune_cog[-3:],
            "codeAft": code_aft,
            "numVoie": number,
            "btq": repeat[0].upper() if repeat else None,
            "libelleVoie": canonical_name(street)[:60],
            "libelleCommune": canonical_name(commune.name)[:60],
            "natureImp": "TH",
            "libelleEdition1": payers[0].edition_name if payers else None,
            "libelleEdition2": payers[1].edition_name if len(payers) > 1 else None,
        }
        return {k: v for k, v in heading.items() if v is not None}


@dataclass(frozen=True, slots=True)
class Declarant:
    """A natural person: what R2P knows about them, and what a declaration says of them."""

    spi: str
    sexe: str  # "M" or "F"
    nom: str  # birth name
    prenoms: str  # space-separated, as given
    naissance: dt.date
    commune_naissance: str | None = None  # COG, when born in France
    pays_naissance: str = FRANCE  # COG
    nom_usage: str | None = None
    communicable: bool = True

    @property
    def departement_naissance(self) -> str:
        """Department of birth, ``"99"`` when born abroad (INSEE convention)."""
        if self.commune_naissance is None:
            return "99"
        return COMMUNES_BY_COG[self.commune_naissance].department

    @property
    def lieu_naissance(self) -> str:
        if self.commune_naissance is not None:
            return COMMUNES_BY_COG[self.commune_naissance].name
        return COUNTRIES_BY_COG[self.pays_naissance].name

    @property
    def edition_name(self) -> str:
        """The name a notice prints: civility, usage (else birth) name, first names."""
        civility = "MME" if self.sexe == "F" else "M"
        name = canonical_name(self.nom_usage or self.nom)
        return f"{civility} {name} {canonical_name(self.prenoms)}"[:60]

    def person_row(self, store: str, address: Address) -> dict[str, Any]:
        born_in_france = self.commune_naissance is not None
        return {
            "store": store,
            "spi": self.spi,
            "sexe": self.sexe,
            "nom_naissance": canonical_name(self.nom),
            "nom_usage": canonical_name(self.nom_usage) if self.nom_usage else None,
            "prenoms": self.prenoms,
            "date_naissance": self.naissance,
            "code_pays_naissance": self.pays_naissance,
            "code_dept_naissance": self.departement_naissance if born_in_france else None,
            "code_commune_naissance": self.commune_naissance,
            "lieu_naissance": self.lieu_naissance,
            "adresse": address.as_person(),
            "communicable": self.communicable,
        }

    def record_fields(self, n: int) -> dict[str, Any]:
        """Declarant ``n``'s fields of an IR record; ``nmUsaDec{n}`` only with a usage name."""
        d = self.naissance
        usage = {f"nmUsaDec{n}": canonical_name(self.nom_usage)} if self.nom_usage else {}
        return {
            f"nmNaiDec{n}": canonical_name(self.nom),
            **usage,
            f"prnmDec{n}": canonical_name(self.prenoms),
            f"dateNaisDec{n}": {
                "jour": f"{d.day:02d}",
                "mois": f"{d.month:02d}",
                "annee": str(d.year),
            },
            f"dptNaissDec{n}": self.departement_naissance,
            f"lieuNaissDec{n}": self.lieu_naissance,
        }


# The boxes of the "demi-part supplémentaire" situations (``SitPartJAXBbean``): none ticked.
_NO_SIT_PART: dict[str, str] = {
    "sitPartP": "0",
    "sitPartF": "0",
    "sitPartW": "0",
    "sitComb": "0",
    "pensVeufGuerre": "0",
    "indEnfSeul5ansMin": "0",
    "indNonSeul": "0",
}


@dataclass(frozen=True, slots=True)
class Situation:
    """One situation of one household for one revenue year; amounts in euros.

    A situation covers the whole year unless a marriage, a divorce or a death splits it
    (``debut``/``fin``); ``type_avis`` 2 is a rectifying notice of a year that already had
    its initial one (``type_avis`` 1); ``deces`` holds each declarant's date of death, when
    they died during the situation.
    """

    foyer: str
    declarants: tuple[Declarant, ...]
    sit_fam: str
    address: Address
    pac: Pac = field(default_factory=Pac)
    parent_isole: bool = False
    salaires: tuple[int, ...] = ()  # per declarant: 1AJ, 1BJ
    pensions: tuple[int, ...] = ()  # per declarant: 1AS, 1BS
    rcm: int = 0  # 2TR interest
    pv: int = 0  # 3VG capital gains
    fonc: int = 0  # 4BA property income
    deficit_foncier: int = 0  # 4BC, imputable on the global income
    pro: int = 0  # 5KP micro-BIC turnover
    alpha: int = 0  # ZZB, a lettered code
    chges: int = 0  # 6DE deductible CSG
    rici: int = 0  # 7UF donations (reduction)
    div: int = 0  # 8TK foreign income (worldwide income)
    pens_al_per: int = 0
    option_impot_separe: bool = False
    rfr_known: bool = True  # False: the declaration is not processed yet (rfr null)
    # The notice: the share of the net tax withholding already took, and whether the
    # balance was paid by the deadline.
    withheld_share: float = 1.0
    paid: bool = True
    withheld: int | None = None  # what withholding took, when not ``withheld_share``
    debut: dt.date | None = None  # the period's first day (default: 1 January)
    fin: dt.date | None = None  # its last day (default: 31 December)
    type_avis: int = 1  # 1 initial notice, 2 rectifying (or supplementary) notice
    etabli: dt.date | None = None  # the notice's date (default: 15 July of annrev + 1)
    deces: tuple[dt.date | None, ...] = ()  # per declarant: date of death
    # The survivor's situation after their spouse's death in the year: the couple's parts.
    survivant: bool = False

    def __post_init__(self) -> None:
        if len(self.declarants) != (2 if self.sit_fam in COUPLE else 1):
            raise ValueError("a couple declares together, anyone else alone")
        if len(self.deces) > len(self.declarants):
            raise ValueError("a date of death per declarant at most")
        if self.type_avis not in (1, 2):
            raise ValueError("typeAvis is 1 (initial) or 2 (rectifying)")

    def record(self, annrev: int) -> dict[str, Any]:
        """The provider's full IR "assiettes" record of this situation
        (``SituationIRAssietteMultiJAXBbean`` without ``annRevenu``, in its order)."""
        nb_parts = parts(
            self.sit_fam, self.pac, parent_isole=self.parent_isole, survivant=self.survivant
        )
        tspr = [
            *({"code": f"1{'AB'[i]}J", "valeur": str(v)} for i, v in enumerate(self.salaires) if v),
            *({"code": f"1{'AB'[i]}S", "valeur": str(v)} for i, v in enumerate(self.pensions) if v),
        ]
        net_wages = round(0.9 * (sum(self.salaires) + sum(self.pensions)))
        gross = net_wages + self.rcm + self.pv + self.fonc + self.pro // 2 + self.alpha
        rbg = max(0, gross - self.deficit_foncier)
        taxable = max(0, rbg - self.chges)
        tax = tax_before_credits(taxable, nb_parts)
        total_ir = max(0, tax - round(self.rici * 0.66))
        total_ir = total_ir if total_ir >= RECOVERY_THRESHOLD else 0
        rev = {
            "tspr": tspr,
            "rcm": _amounts(("2TR", self.rcm)),
            "pv": _amounts(("3VG", self.pv)),
            "fonc": _amounts(("4BA", self.fonc), ("4BC", self.deficit_foncier)),
            "pro": _amounts(("5KP", self.pro)),
            "chges": _amounts(("6DE", self.chges)),
            "rici": _amounts(("7UF", self.rici)),
            "alpha": _amounts(("ZZB", self.alpha)),
            "div": _amounts(("8TK", self.div)),
        }
        aft, aft_detail = self.address.as_aft()
        first = self.declarants[0]
        second = self.declarants[1] if len(self.declarants) > 1 else None
        etabli = self.etabli or dt.date(annrev + 1, 7, 15)
        record: dict[str, Any] = {
            "rfr": taxable + self.div if self.rfr_known else None,
            "sitFam": self.sit_fam,
            "nbPart": nb_parts,
            "pac": self.pac.as_record(),
            **first.record_fields(1),
            **(second.record_fields(2) if second else {}),
            "aft": aft,
            "aftDetail": aft_detail,
            "sitParIso": "T" if self.parent_isole else None,
            "pensAlPer": self.pens_al_per,
            "indDeficit": "1" if self.deficit_foncier > 0 else "0",
            "revenuBrutGlobal": rbg if self.rfr_known else None,
            "rev": {k: v for k, v in rev.items() if v},
            **({"sitPart": "T"} if self.parent_isole else {}),
            "sitParDeclaree": dict(_NO_SIT_PART),
            "indOptionImpotSepar": "1" if self.option_impot_separe else "0",
            "mntRevbareme": taxable,
            "spiDec1": first.spi,
            **({"spiDec2": second.spi} if second else {}),
            "datRec": (etabli + dt.timedelta(days=16)).isoformat(),
            "datEtab": etabli.isoformat(),
            "impAvImput": tax,
            "montTotIr": total_ir,
            "revImposable": taxable,
            "numRole": f"00{self.type_avis}" if total_ir else "000",
            "fipNum": f"{(annrev + 1) % 100:02d}{first.spi[2:13]}",
            "dateDebutPeriode": (self.debut or dt.date(annrev, 1, 1)).isoformat(),
            "dateFinPeriode": (self.fin or dt.date(annrev, 12, 31)).isoformat(),
            "typeAvis": self.type_avis,
        }
        for n, died in enumerate(self.deces, start=1):
            if died is not None:
                record[f"dateDecesdec{n}"] = died.isoformat()
        return record

    def rows(self, store: str, annrev: int, rang: int = 1) -> list[dict[str, Any]]:
        """One ``ir_situation`` row per declarant, so either SPI finds the household."""
        record = self.record(annrev)
        withheld = (
            round(int(record["montTotIr"]) * self.withheld_share)
            if self.withheld is None
            else self.withheld
        )
        facture = facture_lines(record, annrev, withheld=withheld, paid=self.paid)
        return [
            {
                "store": store,
                "spi": d.spi,
                "annrev": annrev,
                "rang": rang,
                "foyer": self.foyer,
                "record": record,
                "facture": facture,
            }
            for d in self.declarants
        ]


def _amounts(*pairs: tuple[str, int]) -> list[dict[str, str]]:
    return [{"code": code, "valeur": str(value)} for code, value in pairs if value]

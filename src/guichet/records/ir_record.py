"""The IR "assiettes" record as the provider sends it, typed for validating extracts; and
the records of the bill, IFI and housing-tax resources.

Every field is optional (a provider may leave one out) but, when present, has the
provider's type; unknown fields are refused, since only catalogued fields can be released.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Text60 = Annotated[str, Field(max_length=60)]
Count = Annotated[int, Field(ge=0, le=99)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PacRecord(_Strict):
    nbPac: Count
    nbPacF: Count | None = None
    nbPacG: Count | None = None
    nbPacH: Count | None = None
    nbPacI: Count | None = None
    nbPacR: Count | None = None
    nbPacJ: Count | None = None
    nbPacN: Count | None = None
    nbPacP: Count | None = None


class DateNaissance(_Strict):
    jour: Annotated[str, Field(pattern=r"^\d{2}$")]
    mois: Annotated[str, Field(pattern=r"^\d{2}$")]
    annee: Annotated[str, Field(pattern=r"^\d{4}$")]


class AftDetail(_Strict):
    complementAdresse: Annotated[str, Field(max_length=32)] | None = None
    voie: Annotated[str, Field(max_length=37)] | None = None
    getcommune: Annotated[str, Field(max_length=60)] | None = None
    getcodePostal: Annotated[str, Field(max_length=32)] | None = None


class Amount(_Strict):
    code: Annotated[str, Field(pattern=r"^[0-9A-Z]{3}$")]
    valeur: Annotated[str, Field(pattern=r"^-?\d{1,11}$|^\d{12}$")]


class Revenus(_Strict):
    tspr: list[Amount] | None = None
    rcm: list[Amount] | None = None
    pv: list[Amount] | None = None
    fonc: list[Amount] | None = None
    pro: list[Amount] | None = None
    chges: list[Amount] | None = None
    rici: list[Amount] | None = None
    alpha: list[Amount] | None = None
    div: list[Amount] | None = None


_Date = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]
_Euros = Annotated[int, Field(ge=-99_999_999_999, le=99_999_999_999)]
_Digits = Annotated[str, Field(pattern=r"^[0-9A-Z]{1,20}$")]


class IrRecord(_Strict):
    rfr: Annotated[int, Field(ge=0, le=9_999_999_999)] | None = None
    nbPart: Annotated[float, Field(ge=0, le=99)] | None = None
    sitFam: Literal["M", "C", "D", "V", "O"] | None = None
    pac: PacRecord | None = None
    nmNaiDec1: Text60 | None = None
    nmUsaDec1: Text60 | None = None
    prnmDec1: Text60 | None = None
    dateNaisDec1: DateNaissance | None = None
    dptNaissDec1: Annotated[str, Field(pattern=r"^[0-9][0-9AB][0-9]?$")] | None = None
    lieuNaissDec1: Text60 | None = None
    nmNaiDec2: Text60 | None = None
    nmUsaDec2: Text60 | None = None
    prnmDec2: Text60 | None = None
    dateNaisDec2: DateNaissance | None = None
    dptNaissDec2: Annotated[str, Field(pattern=r"^[0-9][0-9AB][0-9]?$")] | None = None
    lieuNaissDec2: Text60 | None = None
    aft: Annotated[str, Field(max_length=132)] | None = None
    aftDetail: AftDetail | None = None
    sitParIso: Literal["X", "T"] | None = None
    pensAlPer: Annotated[int, Field(ge=0, le=99_999_999)] | None = None
    indDeficit: Literal[0, 1] | None = None
    revenuBrutGlobal: _Euros | None = None
    sitPart: Annotated[str, Field(max_length=10)] | None = None
    sitParDeclaree: dict[str, int | str | None] | None = None
    indOptionImpotSepar: Literal[0, 1] | None = None
    mntRevbareme: _Euros | None = None
    datRec: _Date | None = None
    datEtab: _Date | None = None
    impAvImput: _Euros | None = None
    montTotIr: _Euros | None = None
    revImposable: _Euros | None = None
    numRole: _Digits | None = None
    fipNum: _Digits | None = None
    rev: Revenus | None = None


# "rev.<category>" names, as ``IR_FIELD_SCOPES`` keys them.
REV_CATEGORIES = tuple(Revenus.model_fields)
RECORD_FIELDS = tuple(IrRecord.model_fields)


# --- the other resources' records (docs/catalogue.md) ---------------------------------

_Col = Annotated[str, Field(max_length=60)] | None


class FactureLine(_Strict):
    """One line of an IR notice, as the provider's ``SituationIRfactureJAXBbean`` has it."""

    numLigne: Annotated[int, Field(ge=1, le=999)]
    codeLigne: Annotated[str, Field(pattern=r"^[0-9A-Z]{1,10}$")]
    libelleLigne: Annotated[str, Field(min_length=1, max_length=120)]
    colonne1: _Col = None
    colonne2: _Col = None
    colonne3: _Col = None
    colonne4: _Col = None


def _unique_line_numbers(lines: list[FactureLine]) -> list[FactureLine]:
    numbers = [line.numLigne for line in lines]
    if len(set(numbers)) != len(numbers):
        raise ValueError("numLigne must be unique within a notice")
    return lines


Facture = Annotated[list[FactureLine], AfterValidator(_unique_line_numbers)]


class IfiRecord(_Strict):
    """The IFI a household declared with the income of a year."""

    indicateurIfiIsf: Literal["O", "N"]
    patrimoineNetTaxable: Annotated[int, Field(ge=0, le=99_999_999_999)] | None = None
    montantIfi: Annotated[int, Field(ge=0, le=9_999_999_999)] | None = None


class ThHeading(_Strict):
    """The heading of one housing-tax assessment (``SituationTHJAXBbean`` without
    ``regimeTax`` and ``locaux``, which come from the premises)."""

    codeDsf: Annotated[str, Field(pattern=r"^[0-9][0-9AB][0-9]$")] | None = None
    codeCommune: Annotated[str, Field(pattern=r"^[0-9]{3}$")] | None = None
    codeAft: Annotated[str, Field(max_length=10)] | None = None
    numVoie: Annotated[str, Field(max_length=5)] | None = None
    btq: Annotated[str, Field(max_length=1)] | None = None
    libelleVoie: Annotated[str, Field(max_length=60)] | None = None
    libelleCommune: Annotated[str, Field(max_length=60)] | None = None
    natureImp: Annotated[str, Field(max_length=10)] | None = None
    libelleEdition1: Annotated[str, Field(max_length=60)] | None = None
    libelleEdition2: Annotated[str, Field(max_length=60)] | None = None


class ThLocalRecord(_Strict):
    natureLocal: Annotated[str, Field(pattern=r"^[A-Z]{2,3}$")]
    affectation: Literal["H", "D", "P"]
    invariant: Annotated[str, Field(pattern=r"^[0-9A-Z]{10}$")]

"""The records the stores hold, in the provider's shapes (``docs/catalogue.md``): the IR
"assiettes" situation (``SituationIRAssietteMultiJAXBbean``), the notice's lines
(``SituationIRfactureJAXBbean``), the IFI indicator (``SituationIfiIsfJAXBbean``) and the
heading and premises of a housing-tax assessment (``SituationTHJAXBbean``, ``LocTHJAXBbean``).

A value that does not exist is **omitted**, never ``null``: only the four values the
convention declares nullable (``rfr``, ``sitFam``, ``sitParIso``, ``revenuBrutGlobal``) may
be ``null``. Every other field is either absent or present with the provider's type; a
``null`` there, an unknown field or another JSON type is refused, since only catalogued
fields of the provider's types can be released.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from guichet.records.spi import is_spi

Text60 = Annotated[str, Field(max_length=60)]
Count = Annotated[int, Field(ge=0, le=99)]
# The fields the convention lets be ``null`` [003 annexe 3 §5.1, §5.4, §5.8].
NULLABLE_FIELDS = frozenset({"rfr", "sitFam", "sitParIso", "revenuBrutGlobal"})


class _Strict(BaseModel):
    """Provider types without conversion, no unknown field, and no ``null`` but where the
    class allows it (``_nullable``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    _nullable: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: object, info: ValidationInfo) -> object:
        if value is None and info.field_name not in cls._nullable:
            raise PydanticCustomError(
                "null_refused",
                "null refusé : une valeur qui n'existe pas est omise (seuls rfr, sitFam, "
                "sitParIso et revenuBrutGlobal d'une situation IR peuvent valoir null)",
            )
        return value


def _spi(value: str) -> str:
    if not is_spi(value):
        raise ValueError("SPI invalide (13 chiffres, clé stdnum.fr.nif)")
    return value


def _real_date(value: str) -> str:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("date inexistante (AAAA-MM-JJ)") from None
    return value


Spi = Annotated[str, AfterValidator(_spi)]
_Date = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$"), AfterValidator(_real_date)]
_Euros = Annotated[int, Field(ge=-99_999_999_999, le=99_999_999_999)]
_Digits = Annotated[str, Field(pattern=r"^[0-9A-Z]{1,20}$")]
_Flag = Literal["0", "1"]
_Dpt = Annotated[str, Field(pattern=r"^[0-9][0-9AB][0-9]?$")]


class PacRecord(_Strict):
    """``PacJAXBbean``: the dependants by letter of the form's boxes."""

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
    """``DateNaisDecJAXBbean``."""

    jour: Annotated[str, Field(pattern=r"^\d{2}$")]
    mois: Annotated[str, Field(pattern=r"^\d{2}$")]
    annee: Annotated[str, Field(pattern=r"^\d{4}$")]


class AftDetail(_Strict):
    """``AftJAXBbean``: the fiscal address split; ``complementAdresse`` omitted when none."""

    complementAdresse: Annotated[str, Field(max_length=32)] | None = None
    voie: Annotated[str, Field(max_length=37)] | None = None
    getcommune: Annotated[str, Field(max_length=60)] | None = None
    getcodePostal: Annotated[str, Field(max_length=32)] | None = None


class Amount(_Strict):
    """``CodeRevJAXBbean``: a box of the declaration and its amount, as a string."""

    code: Annotated[str, Field(pattern=r"^[0-9A-Z]{3}$")]
    valeur: Annotated[str, Field(pattern=r"^-?\d{1,11}$|^\d{12}$")]


class Revenus(_Strict):
    """``RevsJAXBbean``: a category without any valued box is omitted."""

    tspr: list[Amount] | None = None
    rcm: list[Amount] | None = None
    pv: list[Amount] | None = None
    fonc: list[Amount] | None = None
    pro: list[Amount] | None = None
    chges: list[Amount] | None = None
    rici: list[Amount] | None = None
    alpha: list[Amount] | None = None
    div: list[Amount] | None = None


class SitParDeclaree(_Strict):
    """``SitPartJAXBbean``: the boxes of the declaration's "situations pouvant donner droit à
    une demi-part supplémentaire", ``"1"`` when ticked: P (declarant invalid), F (spouse
    invalid), W (veteran's card over 74), a combined situation, G (war widow's pension),
    L (lives alone, raised a child alone at least five years) and the indicator that a
    declarant claiming T (single parent) does not live alone."""

    sitPartP: _Flag | None = None
    sitPartF: _Flag | None = None
    sitPartW: _Flag | None = None
    sitComb: _Flag | None = None
    pensVeufGuerre: _Flag | None = None
    indEnfSeul5ansMin: _Flag | None = None
    indNonSeul: _Flag | None = None


class IrRecord(_Strict):
    """One IR situation: the properties of the provider's ``SituationIRAssietteMultiJAXBbean``
    except ``annRevenu`` (the store's ``annrev``), in its order.

    ``spiDec1``/``spiDec2`` are the declarants' SPIs; ``dateDebutPeriode``/``dateFinPeriode``
    the part of the year the situation covers (the whole year, unless a marriage, divorce
    or death splits it); ``typeAvis`` 1 an initial notice, 2 a rectifying or supplementary
    one; ``dateDecesdec1``/``dateDecesdec2`` a declarant's date of death.
    """

    _nullable = NULLABLE_FIELDS

    rfr: Annotated[int, Field(ge=0, le=9_999_999_999)] | None = None
    sitFam: Literal["M", "C", "D", "V", "O"] | None = None
    nbPart: Annotated[float, Field(ge=0, le=99)] | None = None
    pac: PacRecord | None = None
    nmNaiDec1: Text60 | None = None
    nmUsaDec1: Text60 | None = None
    prnmDec1: Text60 | None = None
    dateNaisDec1: DateNaissance | None = None
    dptNaissDec1: _Dpt | None = None
    lieuNaissDec1: Text60 | None = None
    nmNaiDec2: Text60 | None = None
    nmUsaDec2: Text60 | None = None
    prnmDec2: Text60 | None = None
    dateNaisDec2: DateNaissance | None = None
    dptNaissDec2: _Dpt | None = None
    lieuNaissDec2: Text60 | None = None
    aft: Annotated[str, Field(max_length=132)] | None = None
    aftDetail: AftDetail | None = None
    sitParIso: Literal["X", "T"] | None = None
    pensAlPer: Annotated[int, Field(ge=0, le=99_999_999)] | None = None
    indDeficit: _Flag | None = None
    revenuBrutGlobal: _Euros | None = None
    rev: Revenus | None = None
    sitPart: Annotated[str, Field(min_length=1, max_length=10)] | None = None
    sitParDeclaree: SitParDeclaree | None = None
    indOptionImpotSepar: _Flag | None = None
    mntRevbareme: _Euros | None = None
    spiDec1: Spi | None = None
    spiDec2: Spi | None = None
    datRec: _Date | None = None
    datEtab: _Date | None = None
    impAvImput: _Euros | None = None
    montTotIr: _Euros | None = None
    revImposable: _Euros | None = None
    numRole: _Digits | None = None
    fipNum: _Digits | None = None
    dateDebutPeriode: _Date | None = None
    dateFinPeriode: _Date | None = None
    typeAvis: Literal[1, 2] | None = None
    dateDecesdec1: _Date | None = None
    dateDecesdec2: _Date | None = None

    @model_validator(mode="after")
    def _coherent(self) -> IrRecord:
        if self.spiDec1 is not None and self.spiDec1 == self.spiDec2:
            raise ValueError("spiDec1 et spiDec2 désignent le même déclarant")
        if (
            self.dateDebutPeriode is not None
            and self.dateFinPeriode is not None
            and self.dateDebutPeriode > self.dateFinPeriode
        ):
            raise ValueError("dateDebutPeriode est postérieure à dateFinPeriode")
        return self


# "rev.<category>" names, as ``IR_FIELD_SCOPES`` keys them.
REV_CATEGORIES = tuple(Revenus.model_fields)
RECORD_FIELDS = tuple(IrRecord.model_fields)
SIT_PAR_DECLAREE_FIELDS = tuple(SitParDeclaree.model_fields)


# --- the other resources' records (docs/catalogue.md) ---------------------------------

_Col = Annotated[str, Field(max_length=60)] | None


class FactureLine(_Strict):
    """One line of an IR notice, as the provider's ``SituationIRfactureJAXBbean`` has it; a
    column that does not exist is omitted."""

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
    """Whether a household declared the IFI with the income of a year: the provider's
    ``SituationIfiIsfJAXBbean``, nothing more."""

    indicateurIfiIsf: Literal["O", "N"]


class ThHeading(_Strict):
    """The heading of one housing-tax assessment (``SituationTHJAXBbean`` without
    ``regimeTax`` and ``locaux``, which come from the premises); a value that does not
    exist (``btq``, ``libelleEdition2``…) is omitted."""

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

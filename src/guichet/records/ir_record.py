"""The IR "assiettes" record as the provider sends it, typed for validating extracts.

Every field is optional (a provider may leave one out) but, when present, has the
provider's type; unknown fields are refused, since only catalogued fields can be released.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

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

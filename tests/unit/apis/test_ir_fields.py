"""The provider's schemas as guichet restates them (``schemas.py``), the projection of a record
on them, the scope filter of IR records, and the field → scope table behind it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from guichet.apis.impot_particulier import schemas
from guichet.apis.impot_particulier.fields import filter_record, scope_of
from guichet.apis.impot_particulier.schemas import (
    IR_ASSIETTES,
    IR_FACTURES,
    IR_MILLESIME,
    IR_MULTI,
    NULLABLE,
    REV_CATEGORIES,
    Schema,
    project,
)
from guichet.catalog.products import IFI_FIELD_SCOPES, IR_FIELD_SCOPES, TH_FIELD_SCOPES
from guichet.sandbox import personas
from tests.support.contracts import contracts_folder
from tests.unit.apis.support import assert_conforms

REPOSITORY = Path(__file__).resolve().parents[3]


def _full_record() -> dict[str, Any]:
    for annrev, _rang, situation in personas.situations(2026):
        if situation.foyer == "PER-FULL" and annrev == 2025:
            return situation.record(annrev)
    raise AssertionError("the full-record persona is missing")


def _catalogue_names(schema: Schema) -> set[str]:
    """A schema's data fields as ``IR_FIELD_SCOPES`` keys them (``rev.<category>``)."""
    names = {n for n in schema.properties if n not in ("rev", schemas.ANN_REVENU, "facture")}
    return names | {f"rev.{c}" for c in REV_CATEGORIES}


# --- the catalogue and the schemas ---------------------------------------------------------


def test_every_field_of_the_providers_situation_has_exactly_one_scope() -> None:
    """The catalogue releases exactly the fields of ``SituationIRAssietteMultiJAXBbean`` (the
    superset of the IR schemas): none is left unreleasable, none is invented."""
    assert set(IR_FIELD_SCOPES) == _catalogue_names(IR_MULTI)
    for schema in (IR_ASSIETTES, IR_MILLESIME, IR_FACTURES):
        assert _catalogue_names(schema) <= set(IR_FIELD_SCOPES), schema.name
    assert set(IFI_FIELD_SCOPES) == set(schemas.IFI_ISF.properties)
    assert set(TH_FIELD_SCOPES) == set(schemas.SITUATION_TH.properties)


def test_the_new_fields_scopes() -> None:
    for name in ("spiDec1", "spiDec2", "dateDecesdec1", "dateDecesdec2"):
        assert scope_of(name) == "dgfip_decl"
    for name in ("dateDebutPeriode", "dateFinPeriode", "typeAvis"):
        assert scope_of(name) == "dgfip_sitfam"
    assert scope_of("annRevenu") is None  # not a data field: the situation's year
    assert IFI_FIELD_SCOPES == {"indicateurIfiIsf": "dgfip_ifi"}


def test_the_ir_schemas_differ_where_the_provider_says() -> None:
    multi_only = set(IR_MULTI.properties) - set(IR_ASSIETTES.properties)
    assert multi_only == {
        "spiDec1",
        "spiDec2",
        "dateDebutPeriode",
        "dateFinPeriode",
        "typeAvis",
        "dateDecesdec1",
        "dateDecesdec2",
    }
    assert set(IR_MILLESIME.properties) - set(IR_ASSIETTES.properties) == {"annRevenu"}
    assert set(IR_FACTURES.properties) - set(IR_ASSIETTES.properties) == {"facture"}
    assert {"rfr", "sitFam", "sitParIso", "revenuBrutGlobal"} == NULLABLE


def test_the_restated_schemas_are_the_providers() -> None:
    """Property names, order and nesting as the provider's document has them."""
    path = contracts_folder() / "api-impot-particulier.json"
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    published = document["components"]["schemas"]
    restated = [
        value
        for value in vars(schemas).values()
        if isinstance(value, Schema) and value.name in published
    ]
    assert {s.name for s in restated} >= {
        "SituationsIRAssiettesJAXBbean",
        "SituationIRAssietteMultiJAXBbean",
        "SituationsIRAssiettesMillesimeJAXBbean",
        "SituationsIRAssiettesFacturesJAXBbean",
        "SituationIfiIsfJAXBbean",
        "SituationTHJAXBbean",
        "OuvertureLepJAXBbean",
    }
    for schema in restated:
        properties = published[schema.name]["properties"]
        assert schema.properties == tuple(properties), schema.name
        for name, sub in schema.nested.items():
            spec = properties[name]
            ref = spec.get("$ref") or spec["items"]["$ref"]
            assert ref.rsplit("/", 1)[1] == sub.name, f"{schema.name}.{name}"
            assert sub.properties == tuple(published[sub.name]["properties"]), sub.name
    envelopes = {
        "SituationsIRAssiettesMultipleJAXBbean": schemas.SITUATIONS_IR,
        "SituationsTHJAXBbean": schemas.SITUATIONS_TH,
    }
    for name, member in envelopes.items():
        assert list(published[name]["properties"]) == [member]


# --- projection ----------------------------------------------------------------------------


def test_projection_keeps_the_schemas_properties_only() -> None:
    record = _full_record()
    assert project(record, IR_MULTI) == record  # the stored record is the Multi shape
    assiettes = project(record, IR_ASSIETTES)
    assert "spiDec1" not in assiettes
    assert "dateDebutPeriode" not in assiettes
    assert_conforms(assiettes, IR_ASSIETTES)
    assert list(assiettes) == [p for p in IR_ASSIETTES.properties if p in assiettes]


def test_projection_omits_what_does_not_exist_but_the_four_nullable_values() -> None:
    record = {
        "rfr": None,
        "sitFam": None,
        "sitParIso": None,
        "revenuBrutGlobal": None,
        "nbPart": None,
        "nmUsaDec1": None,
        "aftDetail": {"complementAdresse": None, "voie": "1 RUE", "secret": "x"},
        "rev": {"tspr": [{"code": "1AJ", "valeur": "1", "extra": 2}], "unknown": []},
        "caseP": 1,
    }
    assert project(record, IR_ASSIETTES) == {
        "rfr": None,
        "sitFam": None,
        "aftDetail": {"voie": "1 RUE"},
        "sitParIso": None,
        "revenuBrutGlobal": None,
        "rev": {"tspr": [{"code": "1AJ", "valeur": "1"}]},
    }


# --- the scope filter ------------------------------------------------------------------------


def test_fields_not_granted_are_absent() -> None:
    record = _full_record()
    body, released = filter_record(record, {"dgfip_rfr", "dgfip_pac"})
    assert set(body) == {"rfr", "pac"}
    assert released == {"dgfip_rfr", "dgfip_pac"}
    body, released = filter_record(record, {"dgfip_decl"})
    assert {"spiDec1", "spiDec2", "nmNaiDec1", "dateNaisDec2"} <= set(body)
    assert released == {"dgfip_decl"}
    body, _ = filter_record(record, {"dgfip_sitfam"})
    assert set(body) >= {"sitFam", "dateDebutPeriode", "dateFinPeriode", "typeAvis"}


def test_rev_keeps_granted_categories_only() -> None:
    record = _full_record()
    body, released = filter_record(record, {"dgfip_rev_monde"})
    assert body == {"rev": {"div": record["rev"]["div"]}}
    assert released == {"dgfip_rev_monde"}
    body, released = filter_record(record, {"dgfip_rns"})
    assert set(body["rev"]) == {"tspr", "rcm", "pv", "fonc", "pro", "chges", "rici", "alpha"}


def test_empty_categories_and_unknown_fields_never_leave() -> None:
    record = {"rfr": 1, "secret": "x", "rev": {"tspr": [], "div": [{"code": "8TK", "valeur": "1"}]}}
    body, released = filter_record(record, {"dgfip_rfr", "dgfip_rns"})
    assert body == {"rfr": 1}
    assert released == {"dgfip_rfr"}


def test_a_granted_scope_with_nothing_to_release_is_not_reported() -> None:
    body, released = filter_record({"rfr": 5}, {"dgfip_rfr", "dgfip_aft"})
    assert body == {"rfr": 5}
    assert released == {"dgfip_rfr"}

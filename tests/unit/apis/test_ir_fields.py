"""The scope filter of IR records, and the field → scope table behind it."""

from __future__ import annotations

from guichet.apis.impot_particulier.fields import filter_record, scope_of
from guichet.catalog.products import IR_FIELD_SCOPES
from guichet.records.ir_record import RECORD_FIELDS, REV_CATEGORIES
from guichet.sandbox import personas


def _full_record() -> dict[str, object]:
    for annrev, _rang, situation in personas.situations(2026):
        if situation.foyer == "PER-FULL" and annrev == 2025:
            return situation.record(annrev)
    raise AssertionError("the full-record persona is missing")


def test_every_field_of_a_full_record_maps_to_exactly_one_scope() -> None:
    record = _full_record()
    names = [n for n in record if n != "rev"] + [f"rev.{c}" for c in record["rev"]]  # type: ignore[attr-defined]
    # The persona values every field and every category the catalogue knows…
    assert set(names) == set(IR_FIELD_SCOPES)
    # …and the importer's schema knows exactly the same fields.
    assert set(RECORD_FIELDS) - {"rev"} | {f"rev.{c}" for c in REV_CATEGORIES} == set(
        IR_FIELD_SCOPES
    )
    for name in names:
        owners = [scope for field, scope in IR_FIELD_SCOPES.items() if field == name]
        assert len(owners) == 1, name
        assert scope_of(name) == owners[0]


def test_fields_not_granted_are_absent() -> None:
    record = _full_record()
    body, released = filter_record(record, {"dgfip_rfr", "dgfip_pac"})
    assert set(body) == {"rfr", "pac"}
    assert released == {"dgfip_rfr", "dgfip_pac"}


def test_rev_keeps_granted_categories_only() -> None:
    record = _full_record()
    body, released = filter_record(record, {"dgfip_rev_monde"})
    assert body == {"rev": {"div": record["rev"]["div"]}}  # type: ignore[index]
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

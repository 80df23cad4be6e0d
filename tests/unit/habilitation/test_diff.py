"""The per-field diff between two versions of a form."""

from __future__ import annotations

from guichet.habilitation.diff import FieldChange, as_json, diff, from_json


def test_nested_fields_lists_and_absence() -> None:
    before = {
        "basics": {"demarche": "QF", "description": "Ancienne"},
        "perimeter": {"data_scopes": {"dgfip_rfr": "a"}, "year_scopes": ["n1"]},
        "contacts": {"dpo": {}},
    }
    after = {
        "basics": {"demarche": "QF", "description": "Nouvelle"},
        "perimeter": {"data_scopes": {"dgfip_rfr": "a", "dgfip_nbpart": "b"}, "year_scopes": []},
        "recipients": {"services": ["Éducation"]},
    }
    changes = diff(before, after)
    assert changes == [
        FieldChange("basics.description", "Ancienne", "Nouvelle"),
        FieldChange("perimeter.data_scopes.dgfip_nbpart", None, "b"),
        FieldChange("perimeter.year_scopes", ["n1"], None),
        FieldChange("recipients.services", None, ["Éducation"]),
    ]
    assert from_json(as_json(changes)) == changes
    assert diff(after, after) == []

"""What changed in a request's form between two versions, field by field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field's value before and after (``None`` when absent on that side)."""

    field: str  # dotted path, e.g. "perimeter.data_scopes.dgfip_rfr"
    before: Any
    after: Any


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings become dotted paths; lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldChange]:
    """Every field whose value differs, in path order; empty and absent are the same."""
    old, new = flatten(before), flatten(after)
    changes = []
    for path in sorted(old.keys() | new.keys()):
        a, b = old.get(path), new.get(path)
        if _empty(a) and _empty(b):
            continue
        if a != b:
            changes.append(FieldChange(path, None if _empty(a) else a, None if _empty(b) else b))
    return changes


def as_json(changes: list[FieldChange]) -> dict[str, Any]:
    """The stored form of a diff: field path → ``[before, after]``."""
    return {c.field: [c.before, c.after] for c in changes}


def from_json(stored: Mapping[str, Any] | None) -> list[FieldChange]:
    return [FieldChange(k, v[0], v[1]) for k, v in (stored or {}).items()]

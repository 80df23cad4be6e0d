"""Limits an IR record to the habilitation's data scopes [SPEC §5: "data returned is limited
to the granted scopes"]: a field not granted is absent, not null."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from guichet.catalog.products import IR_FIELD_SCOPES


def scope_of(field: str) -> str | None:
    """The data scope releasing a top-level field or ``rev.<category>``; None if uncatalogued."""
    return IR_FIELD_SCOPES.get(field)


def filter_record(
    record: Mapping[str, Any], granted: Iterable[str]
) -> tuple[dict[str, Any], set[str]]:
    """(the record limited to ``granted``, the scopes that actually released a field).

    ``rev`` keeps only the granted categories, and is absent when none is left; a field
    that no scope releases (unknown to the catalogue) never leaves.
    """
    scopes = frozenset(granted)
    out: dict[str, Any] = {}
    released: set[str] = set()
    for name, value in record.items():
        if name == "rev":
            rev: dict[str, Any] = {}
            for category, amounts in (value or {}).items():
                scope = scope_of(f"rev.{category}")
                if scope in scopes and amounts:
                    rev[category] = amounts
                    released.add(scope)
            if rev:
                out["rev"] = rev
            continue
        scope = scope_of(name)
        if scope is not None and scope in scopes:
            out[name] = value
            released.add(scope)
    return out, released


def filter_fields(
    record: Mapping[str, Any], field_scopes: Mapping[str, str], granted: Iterable[str]
) -> tuple[dict[str, Any], set[str]]:
    """(the top-level fields of ``record`` that ``field_scopes`` releases under ``granted``,
    the scopes that released one); any other field never leaves."""
    scopes = frozenset(granted)
    out: dict[str, Any] = {}
    released: set[str] = set()
    for name, value in record.items():
        scope = field_scopes.get(name)
        if scope is not None and scope in scopes:
            out[name] = value
            released.add(scope)
    return out, released

"""API FICOBA in the catalogue: the provider's operations, and words for each of its scopes,
search types and operations."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from guichet.catalog import vocabulary
from guichet.catalog.products import (
    FICOBA,
    FICOBA_DATA_SCOPES,
    FICOBA_RELEASED_SCOPES,
    FICOBA_SEARCH_SCOPES,
    FICOBA_SEARCH_TYPES,
    PRODUCTS,
)


def test_the_product_is_the_provider_s_interface() -> None:
    assert PRODUCTS["ficoba"] is FICOBA
    assert FICOBA.base_path == "/fcb-masrestit/api/v2"
    assert FICOBA.default_quota_per_minute == 200
    assert FICOBA.error_format == "reponse_erreur"
    assert FICOBA.required_headers == ("X-Request-ID",)
    searches = [op for op in FICOBA.operations if op.method == "POST"]
    assert len(searches) == 7
    assert all(op.max_body_bytes > 0 for op in searches)
    assert {op.request_media_type for op in searches} == {"application/json"}
    (health,) = [op for op in FICOBA.operations if op.method == "GET"]
    assert (health.path, health.operation_id, health.health) == ("/etatSante", "getInfo", True)


def test_the_operations_are_the_provider_s_document_s() -> None:
    folder = os.environ.get("GUICHET_PROVIDER_CONTRACTS")
    if not folder or not (Path(folder) / "api-ficoba.json").is_file():
        pytest.skip("the provider's documents are not here (GUICHET_PROVIDER_CONTRACTS)")
    provider = json.loads((Path(folder) / "api-ficoba.json").read_text(encoding="utf-8"))
    theirs = {
        (method.upper(), path, op["operationId"])
        for path, item in provider["paths"].items()
        for method, op in item.items()
    }
    ours = {(op.method, op.path, op.operation_id) for op in FICOBA.operations}
    assert ours == theirs


def test_every_scope_search_type_and_operation_has_words() -> None:
    assert set(vocabulary.FICOBA_RESOURCE_SCOPES) == FICOBA.resource_scopes
    for scope in FICOBA_DATA_SCOPES:
        assert vocabulary.scope_name(scope) != scope
    assert len(vocabulary.FICOBA_SEARCH_TYPES) == 11  # the eleven of seed 002 §4
    for op in FICOBA.operations:
        assert vocabulary.operation_name(f"{op.method} {op.name}") != "Autre appel"


def test_each_search_type_is_granted_by_its_own_scope_named_in_words() -> None:
    """The convention habilitates per search type [002 §4]: eleven data scopes, one a type,
    each read as the type's French name; the three scopes an answer releases share none."""
    assert tuple(vocabulary.FICOBA_SEARCH_TYPES) == FICOBA_SEARCH_TYPES
    assert FICOBA.data_scopes == FICOBA_DATA_SCOPES == frozenset(FICOBA_SEARCH_SCOPES.values())
    assert len(FICOBA_DATA_SCOPES) == 11
    for kind, scope in FICOBA_SEARCH_SCOPES.items():
        assert scope == f"ficoba_recherche_{kind}"
        assert vocabulary.FICOBA_SEARCH_TYPES[kind] in vocabulary.scope_name(scope)
    assert not FICOBA_DATA_SCOPES & set(FICOBA_RELEASED_SCOPES)
    released = [k for kinds in FICOBA_RELEASED_SCOPES.values() for k in kinds]
    assert sorted(released) == sorted(FICOBA_SEARCH_TYPES)
    for scope in FICOBA_RELEASED_SCOPES:
        assert vocabulary.scope_name(scope) != scope
    (theme,) = [t for t, _ in vocabulary.themes_of(FICOBA_DATA_SCOPES)]
    assert theme.key == "comptes_bancaires"


def test_a_search_type_has_its_french_name() -> None:
    assert vocabulary.search_type_name("verification_iban_siret") == "vérification IBAN SIRET"
    assert vocabulary.field_name("perimeter.search_types.multi_detention_personne_morale") == (
        "Périmètre des données — Finalité de la recherche « multi-détention personne morale »"
    )

"""guichet's OpenAPI documents keep the provider's interface: the same paths below the same
base path, operationIds, parameters (name as spelled, location, required-ness, type and
format), request bodies (required-ness, media types, schemas), response statuses and media
types, and response schemas (property names and JSON types, through every reference);
whatever guichet adds (a status, a parameter, a response header, an operation, a property of
an object the provider leaves open) is marked ``x-guichet-addition: true``.

The provider's documents come from ``GUICHET_PROVIDER_CONTRACTS`` (``tests/support/contracts``);
without them the comparisons are skipped, which the last tests check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.support.contracts import (
    ADDITION,
    ANY_MEDIA,
    ENV_VAR,
    FICOBA,
    IMPOT_PARTICULIER,
    JSON_MEDIA,
    NULLABLE,
    R2P,
    SKIP_REASON,
    ApiDocument,
    Operation,
    Response,
    contracts_folder,
    guichet_document,
    json_types,
    media_type_matches,
    object_view,
    provider_document,
    provider_errors,
)

ROOT = Path(__file__).resolve().parents[3]
# The provider's document → guichet's, by its key in ``guichet.apis.DOCUMENTS``.
PAIRS = [(IMPOT_PARTICULIER, "impot_particulier"), (R2P, "r2p"), (FICOBA, "ficoba")]
IDS = ["impot_particulier", "r2p", "ficoba"]


@pytest.fixture(scope="module")
def folder() -> Path:
    return contracts_folder()


def _documents(folder: Path, provider_file: str, key: str) -> tuple[ApiDocument, ApiDocument]:
    return provider_document(provider_file, folder), guichet_document(key)


def _label(op: Operation) -> str:
    return f"{op.operation_id} ({op.method.upper()} {op.path})"


def _fail(differences: list[str], what: str) -> None:
    if differences:
        listed = "\n".join(f"- {d}" for d in differences)
        pytest.fail(f"{len(differences)} differences in {what}:\n{listed}", pytrace=False)


def _pairs(provider: ApiDocument, guichet: ApiDocument) -> Iterator[tuple[Operation, Operation]]:
    """Each provider operation with guichet's at the same path (else the same operationId)."""
    for p in provider.operations:
        g = next(
            (o for o in guichet.operations if o.method == p.method and o.path == p.path), None
        ) or guichet.by_id(p.operation_id or "")
        if g is not None:
            yield p, g


def _marked(obj: Mapping[str, Any] | None) -> bool:
    return obj is not None and obj.get(ADDITION) is True


# --- paths and operationIds -------------------------------------------------------------------


@pytest.mark.parametrize(("provider_file", "key"), PAIRS, ids=IDS)
def test_paths_and_operation_ids(folder: Path, provider_file: str, key: str) -> None:
    provider, guichet = _documents(folder, provider_file, key)
    differences: list[str] = []
    if guichet.base_path != provider.base_path:
        differences.append(
            f"server base path {guichet.base_path!r}, the provider's {provider.base_path!r}"
        )
    matched: set[int] = set()
    for p in provider.operations:
        same_path = next(
            (o for o in guichet.operations if o.method == p.method and o.path == p.path), None
        )
        by_id = guichet.by_id(p.operation_id or "")
        if same_path is None and by_id is None:
            differences.append(f"{_label(p)}: no such operation in guichet's document")
            continue
        if same_path is None:
            assert by_id is not None
            differences.append(f"{_label(p)}: guichet has {p.operation_id} at {by_id.path}")
            matched.add(id(by_id))
            continue
        matched.add(id(same_path))
        if same_path.operation_id != p.operation_id:
            differences.append(f"{_label(p)}: guichet's operationId is {same_path.operation_id!r}")
    for g in guichet.operations:
        if id(g) not in matched and not _marked(g.raw):
            differences.append(
                f"{_label(g)}: an operation the provider does not have, not marked {ADDITION}"
            )
    _fail(differences, f"the paths of guichet's {key!r} document")


# --- parameters -----------------------------------------------------------------------------


def _type_format(parameter: Mapping[str, Any]) -> tuple[set[str], str | None]:
    """A parameter's JSON types (null aside) and format: Swagger 2.0 keeps them on the
    parameter, OpenAPI 3 in its ``schema``."""
    schema = parameter.get("schema") if "schema" in parameter else parameter
    assert isinstance(schema, Mapping)
    return json_types(schema) - {"null"}, schema.get("format")


def _has_bearer(guichet: ApiDocument, op: Operation) -> bool:
    schemes = guichet.resolved.get("components", {}).get("securitySchemes", {})
    requirements = op.raw.get("security", guichet.resolved.get("security")) or []
    for requirement in requirements:
        for name in requirement:
            scheme = schemes.get(name) or {}
            if scheme.get("type") == "oauth2" or scheme.get("scheme", "").lower() == "bearer":
                return True
    return False


def _parameter_differences(p_op: Operation, g_op: Operation, guichet: ApiDocument) -> list[str]:
    out: list[str] = []
    where = _label(p_op)
    for p in p_op.parameters:
        name, location = p.get("name", ""), p.get("in", "")
        g = g_op.parameter(name, location)
        if g is None:
            if (
                name.lower() == "authorization"
                and location == "header"
                and _has_bearer(guichet, g_op)
            ):
                continue  # OpenAPI 3 describes it by the security scheme
            out.append(f"{where}: parameter {name} ({location}) is missing")
            continue
        if g.get("name") != name:
            # HTTP header names ignore case, but a client generated from the provider's
            # document names its argument after the provider's spelling (X-request-ID).
            out.append(f"{where}: parameter {name} ({location}) is spelled {g.get('name')!r}")
        if p.get("required") is True and g.get("required") is not True:
            out.append(
                f"{where}: parameter {name} ({location}) is optional, the provider's required"
            )
        if g.get("required") is True and p.get("required") is not True:
            out.append(
                f"{where}: parameter {name} ({location}) is required, the provider's optional"
            )
        p_types, p_format = _type_format(p)
        g_types, g_format = _type_format(g)
        if p_types and g_types != p_types:
            out.append(
                f"{where}: parameter {name} ({location}) is of type {sorted(g_types)}, "
                f"the provider's {sorted(p_types)}"
            )
        if p_format and g_format != p_format:
            out.append(
                f"{where}: parameter {name} ({location}) has format {g_format!r}, "
                f"the provider's {p_format!r}"
            )
    for g in g_op.parameters:
        name, location = g.get("name", ""), g.get("in", "")
        if p_op.parameter(name, location) is None and not _marked(g):
            out.append(
                f"{where}: parameter {name} ({location}) guichet adds is not marked {ADDITION}"
            )
    return out


@pytest.mark.parametrize(("provider_file", "key"), PAIRS, ids=IDS)
def test_parameters(folder: Path, provider_file: str, key: str) -> None:
    provider, guichet = _documents(folder, provider_file, key)
    differences = [
        d
        for p_op, g_op in _pairs(provider, guichet)
        for d in _parameter_differences(p_op, g_op, guichet)
    ]
    _fail(differences, f"the parameters of guichet's {key!r} document")


# --- responses ------------------------------------------------------------------------------


def _counterpart(p_status: str, p_resp: Response, g_op: Operation) -> tuple[str, Response] | None:
    """guichet's response for a provider status; the provider's ``default`` carrying the
    success answer (``SituationsIrAssiettesFCV1``) is guichet's ``default`` or 2xx."""
    if p_status in g_op.responses:
        return p_status, g_op.responses[p_status]
    if p_status == "default" and p_resp.content:
        for status, resp in g_op.responses.items():
            if status.startswith("2") and resp.content:
                return status, resp
    return None


def _media_set(media_types: tuple[str, ...]) -> set[str]:
    """Swagger 2.0's ``*/*`` is JSON (guichet answers ``application/json``)."""
    return {JSON_MEDIA if m.strip() == ANY_MEDIA else m.strip().lower() for m in media_types}


def _response_differences(p_op: Operation, g_op: Operation) -> list[str]:
    out: list[str] = []
    where = _label(p_op)
    kept: set[str] = set()
    for p_status, p_resp in p_op.responses.items():
        found = _counterpart(p_status, p_resp, g_op)
        if found is None:
            out.append(f"{where}: status {p_status}, documented by the provider, is missing")
            continue
        g_status, g_resp = found
        kept.add(g_status)
        if p_resp.content and _media_set(g_resp.media_types) != _media_set(p_resp.media_types):
            out.append(
                f"{where}: status {g_status} answers {', '.join(g_resp.media_types) or 'nothing'}"
                f", the provider {', '.join(p_resp.media_types)}"
            )
        if not p_resp.content and g_resp.content and p_status.startswith("2"):
            out.append(f"{where}: status {g_status} has a body, the provider's none")
        if _marked(g_resp.raw) and p_status != "default":
            out.append(f"{where}: status {g_status} is the provider's, yet marked {ADDITION}")
        for header, value in (g_resp.raw.get("headers") or {}).items():
            if not _marked(value):
                out.append(
                    f"{where}: header {header} of status {g_status} is not marked {ADDITION}"
                )
    for g_status, g_resp in g_op.responses.items():
        if g_status not in kept and not _marked(g_resp.raw):
            out.append(f"{where}: status {g_status} guichet adds is not marked {ADDITION}")
    return out


@pytest.mark.parametrize(("provider_file", "key"), PAIRS, ids=IDS)
def test_responses(folder: Path, provider_file: str, key: str) -> None:
    provider, guichet = _documents(folder, provider_file, key)
    differences = [
        d for p_op, g_op in _pairs(provider, guichet) for d in _response_differences(p_op, g_op)
    ]
    _fail(differences, f"the responses of guichet's {key!r} document")


# --- schemas --------------------------------------------------------------------------------


def schema_differences(
    provider: Mapping[str, Any], guichet: Mapping[str, Any], path: str = "$", name: str = ""
) -> list[str]:
    """Property names and JSON types, recursively; null only where the convention allows.

    An object the provider leaves open (``type: object`` and no properties, FICOBA's
    ``TitulaireCompte``) may be detailed by guichet, each property marked an addition."""
    out: list[str] = []
    p_types = json_types(provider) - {"null"}
    g_all = json_types(guichet)
    g_types = g_all - {"null"}
    if p_types and g_types != p_types:
        out.append(f"{path}: type {sorted(g_types)}, the provider's {sorted(p_types)}")
    if "null" in g_all and name not in NULLABLE:
        out.append(f"{path}: guichet allows null, the provider does not")
    if name in NULLABLE and "null" not in g_all:
        out.append(f"{path}: the convention declares it nullable, guichet's schema does not")
    p_view, g_view = object_view(provider), object_view(guichet)
    p_props: Mapping[str, Any] = p_view.get("properties") or {}
    g_props: Mapping[str, Any] = g_view.get("properties") or {}
    for prop in sorted(set(p_props) - set(g_props)):
        out.append(f"{path}.{prop}: defined by the provider, missing in guichet's schema")
    open_object = not p_props and "object" in p_types
    for prop in sorted(set(g_props) - set(p_props)):
        if open_object and _marked(g_props[prop]):
            continue
        marked = f", not marked {ADDITION}" if open_object else ""
        out.append(f"{path}.{prop}: a property the provider does not define{marked}")
    for prop in sorted(set(p_props) & set(g_props)):
        out += schema_differences(p_props[prop], g_props[prop], f"{path}.{prop}", prop)
    if isinstance(p_view.get("items"), Mapping) and isinstance(g_view.get("items"), Mapping):
        out += schema_differences(p_view["items"], g_view["items"], f"{path}[*]")
    return out


@pytest.mark.parametrize(("provider_file", "key"), PAIRS, ids=IDS)
def test_response_schemas(folder: Path, provider_file: str, key: str) -> None:
    provider, guichet = _documents(folder, provider_file, key)
    differences: list[str] = []
    for p_op, g_op in _pairs(provider, guichet):
        for p_status, p_resp in p_op.responses.items():
            found = _counterpart(p_status, p_resp, g_op)
            for media, p_schema in p_resp.content.items():
                if p_schema is None or found is None:
                    continue
                g_status, g_resp = found
                g_schema = g_resp.schema_for(JSON_MEDIA if media == ANY_MEDIA else media)
                if g_schema is None:
                    differences.append(f"{_label(p_op)}: status {g_status} has no {media} schema")
                    continue
                differences += [
                    f"{_label(p_op)} {g_status}: {d}"
                    for d in schema_differences(p_schema, g_schema)
                ]
    _fail(differences, f"the response schemas of guichet's {key!r} document")


# --- request bodies -------------------------------------------------------------------------


def _request_body_differences(p_op: Operation, g_op: Operation) -> list[str]:
    """The request body: required-ness, media types and schemas (names and JSON types)."""
    where = _label(p_op)
    p_body, g_body = p_op.request_body, g_op.request_body
    if p_body is None:
        if g_body is not None and not _marked(g_body):
            return [f"{where}: a request body the provider does not have, not marked {ADDITION}"]
        return []
    if g_body is None:
        return [f"{where}: the provider's request body is missing"]
    out: list[str] = []
    if bool(p_body.get("required")) != bool(g_body.get("required")):
        out.append(
            f"{where}: request body required={bool(g_body.get('required'))}, "
            f"the provider's {bool(p_body.get('required'))}"
        )
    p_content: Mapping[str, Any] = p_body.get("content") or {}
    g_content: Mapping[str, Any] = g_body.get("content") or {}
    if set(g_content) != set(p_content):
        out.append(
            f"{where}: request media types {sorted(g_content)}, the provider's {sorted(p_content)}"
        )
    for media in sorted(set(p_content) & set(g_content)):
        p_schema = (p_content[media] or {}).get("schema")
        g_schema = (g_content[media] or {}).get("schema")
        if p_schema is None:
            continue
        if g_schema is None:
            out.append(f"{where}: request {media} has no schema")
            continue
        out += [f"{where} request: {d}" for d in schema_differences(p_schema, g_schema)]
    return out


@pytest.mark.parametrize(("provider_file", "key"), PAIRS, ids=IDS)
def test_request_bodies(folder: Path, provider_file: str, key: str) -> None:
    provider, guichet = _documents(folder, provider_file, key)
    differences = [
        d for p_op, g_op in _pairs(provider, guichet) for d in _request_body_differences(p_op, g_op)
    ]
    _fail(differences, f"the request bodies of guichet's {key!r} document")


def test_ficoba_keeps_every_search_of_the_provider(folder: Path) -> None:
    """FICOBA v2 [api-ficoba.json]: the health check and seven POST searches, each with the
    provider's two required headers, under the provider's base path."""
    provider, guichet = _documents(folder, FICOBA, "ficoba")
    assert guichet.base_path == provider.base_path == "/fcb-masrestit/api/v2"
    expected = {(o.method, o.path, o.operation_id) for o in provider.operations}
    assert {(o.method, o.path, o.operation_id) for o in guichet.operations} == expected
    assert len([o for o in guichet.operations if o.method == "post"]) == 7
    for op in guichet.operations:
        names = {p["name"] for p in op.parameters if p.get("in") == "header"}
        request_id = "X-request-ID" if op.operation_id == "getInfo" else "X-Request-ID"
        assert {"X-Correlation-ID", request_id} <= names, op.operation_id
        assert all(p.get("required") is True for p in op.parameters), op.operation_id
        if op.method == "post":
            assert op.request_body is not None, op.operation_id
            assert op.request_body.get("required") is True, op.operation_id
            assert list(op.request_body["content"]) == [JSON_MEDIA], op.operation_id
    schemes = guichet.resolved["components"]["securitySchemes"]
    assert schemes["bearer"][ADDITION] is True  # the provider's document describes none
    assert schemes["mutualTLS"][ADDITION] is True


# --- the strict reading itself --------------------------------------------------------------


def test_the_strict_reading_refuses_what_the_provider_does_not_define() -> None:
    """The reading the conformance test relies on: OpenAPI 3.0 semantics, no other property."""
    schema = {
        "type": "object",
        "properties": {
            "rfr": {"type": "integer", "format": "int64"},
            "nbPart": {"type": "number", "format": "double"},
            "indDeficit": {"type": "string"},
            "pac": {"type": "object", "properties": {"nbPac": {"type": "integer"}}},
        },
    }
    assert provider_errors(schema, {"rfr": None, "nbPart": 2, "indDeficit": "0"}) == []
    found = {
        (e.path, e.message.split(" (")[0])
        for e in provider_errors(
            schema, {"rfr": 1.5, "nbPart": "2", "indDeficit": None, "pac": {"nbPac": 1.0, "x": 1}}
        )
    }
    assert found == {
        ("$.rfr", "number where the schema says integer or null"),
        ("$.nbPart", "string where the schema says number"),
        ("$.indDeficit", "null where the schema says string"),
        ("$.pac.nbPac", "number where the schema says integer"),
        ("$.pac.x", "a property the schema does not define"),
    }
    assert media_type_matches("*/*", "application/json; charset=utf-8")
    assert not media_type_matches("*/*", "text/html")


# --- without the provider's documents -------------------------------------------------------


def test_without_the_setting_the_checks_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(pytest.skip.Exception) as unset:
        contracts_folder()
    assert str(unset.value).startswith(SKIP_REASON)
    assert "provider documents not available: set GUICHET_PROVIDER_CONTRACTS" in str(unset.value)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "absent"))
    with pytest.raises(pytest.skip.Exception) as absent:
        provider_document(IMPOT_PARTICULIER)
    assert str(absent.value).startswith(SKIP_REASON)
    assert "api-impot-particulier.json" in str(absent.value)
    with pytest.raises(pytest.skip.Exception):
        contracts_folder(str(tmp_path))  # a folder without the documents


def test_a_clone_without_the_documents_runs_the_rest() -> None:
    """The conformance module, run as a clone without ``../shared`` would: skipped, with the
    reason, and nothing fails or errors."""
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env["GUICHET_TEST_BACKENDS"] = "sqlite"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "tests/unit/apis/test_provider_conformance.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "provider documents not available: set GUICHET_PROVIDER_CONTRACTS" in run.stdout
    assert " skipped" in run.stdout
    assert "failed" not in run.stdout
    assert "error" not in run.stdout.lower()

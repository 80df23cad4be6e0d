"""The provider's published interface documents and guichet's own, made comparable: load them,
find an operation and its responses, and validate an answer against a response schema read
the provider's way (strict) or guichet's way (as published).

The provider's documents are read from the folder named by ``GUICHET_PROVIDER_CONTRACTS``
(``.ci/run`` points it at ``../shared/provider-contracts``); they are never copied into the
repository. Without them, the tests that need them are skipped with ``SKIP_REASON`` and the
rest of the suite runs.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import jsonschema_rs
import pytest

from guichet.apis import load_openapi

ENV_VAR: Final = "GUICHET_PROVIDER_CONTRACTS"
SKIP_REASON: Final = (
    f"provider documents not available: set {ENV_VAR} to the folder of the provider's "
    "published documents (../shared/provider-contracts) / documents du fournisseur absents"
)
IMPOT_PARTICULIER: Final = "api-impot-particulier.json"  # OpenAPI 3.0.1, 15 paths
R2P: Final = "api-r2p.json"  # Swagger 2.0, 3 paths
FICOBA: Final = "api-ficoba.json"  # OpenAPI 3.0.1, health + 7 POST searches
# The OS1–OS9 contract of the convention (seed 003, annex 3 §5): no provider document, its
# shapes restated in guichet's own document.
OS_DOCUMENT: Final = "impot_particulier_os"
ORIGIN: Final = "https://127.0.0.1:8443"
ADDITION: Final = "x-guichet-addition"
# The values of the provider's records the convention's technical contract declares nullable
# (seed 003, annex 3: §5.1 rfr, §5.4 sitFam and sitParIso, §5.8 revenuBrutGlobal): OpenAPI
# 3.0 has no implicit null, so a null anywhere else in an answer is a deviation.
NULLABLE: Final = frozenset({"rfr", "sitFam", "sitParIso", "revenuBrutGlobal"})
# The OS contract's own answers add the declarants' names of OS4, "chaîne … ou « null »"
# (seed 003, annex 3 §5.4).
OS_NULLABLE: Final = NULLABLE | {
    "nmNaiDec1",
    "nmUsaDec1",
    "prnmDec1",
    "nmNaiDec2",
    "nmUsaDec2",
    "prnmDec2",
}
# Swagger 2.0's ``*/*`` (R2P's ``produces``): guichet answers JSON.
ANY_MEDIA: Final = "*/*"
JSON_MEDIA: Final = "application/json"
PROBLEM_MEDIA: Final = "application/problem+json"
METHODS: Final = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# The JSON Schema keywords an OpenAPI 3.0 / Swagger 2.0 schema object shares with draft 4;
# the rest (example, xml, format, readOnly, x-…) annotates and is dropped.
_ASSERTIONS: Final = (
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "required",
)


# --- the setting ---------------------------------------------------------------------------


def contracts_folder(value: str | None = None, *, from_environment: bool = True) -> Path:
    """The folder of the provider's documents: ``value``, else the setting; ``pytest.skip``
    with ``SKIP_REASON`` when neither names a folder holding them."""
    raw = value if value is not None or not from_environment else os.environ.get(ENV_VAR)
    if not raw or not raw.strip():
        pytest.skip(f"{SKIP_REASON} ({ENV_VAR} is unset)")
    folder = Path(raw.strip()).expanduser()
    missing = [name for name in (IMPOT_PARTICULIER, R2P) if not (folder / name).is_file()]
    if missing:
        pytest.skip(f"{SKIP_REASON} ({', '.join(missing)} not found in {folder})")
    return folder


# --- documents -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    """One documented status of an operation; ``content`` maps media type → schema (None
    when the media type has no schema). ``raw`` is the dereferenced response object."""

    status: str
    content: Mapping[str, dict[str, Any] | None]
    raw: Mapping[str, Any]

    @property
    def media_types(self) -> tuple[str, ...]:
        return tuple(self.content)

    def schema_for(self, content_type: str | None) -> dict[str, Any] | None:
        """The schema of the media type a ``Content-Type`` header designates."""
        for media, schema in self.content.items():
            if media_type_matches(media, content_type):
                return schema
        return None


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # the full path template: the server's base path, then the document's path
    operation_id: str | None
    parameters: tuple[dict[str, Any], ...]  # dereferenced, the path item's and the operation's
    responses: Mapping[str, Response]
    raw: Mapping[str, Any]
    _pattern: re.Pattern[str] = field(repr=False, compare=False)

    def matches(self, path: str) -> bool:
        return path == self.path or self._pattern.fullmatch(path) is not None

    def response(self, status: int | str) -> Response | None:
        """The response documented for ``status``: exact, then ``2XX``-style, then default."""
        text = str(status)
        for key in (text, f"{text[0]}XX", f"{text[0]}xx", "default"):
            if key in self.responses:
                return self.responses[key]
        return None

    @property
    def request_body(self) -> Mapping[str, Any] | None:
        """The dereferenced request body object (OpenAPI 3); None when there is none."""
        body = self.raw.get("requestBody")
        return body if isinstance(body, Mapping) else None

    def parameter(self, name: str, location: str) -> dict[str, Any] | None:
        for p in self.parameters:
            same = p.get("name", "").lower() == name.lower() if location == "header" else None
            if p.get("in") == location and (same or p.get("name") == name):
                return p
        return None


@dataclass(frozen=True)
class ApiDocument:
    """One OpenAPI (3.0, 3.1) or Swagger 2.0 document, dereferenced once."""

    title: str
    dialect: str  # "swagger-2.0", "openapi-3.0" or "openapi-3.1"
    base_path: str
    raw: Mapping[str, Any]  # as published
    resolved: Mapping[str, Any]  # every $ref inlined
    operations: tuple[Operation, ...]

    def find(self, method: str, path: str) -> Operation | None:
        """The operation of a path template or a concrete path (the base path included)."""
        method = method.lower()
        candidates = [o for o in self.operations if o.method == method]
        for op in candidates:  # a template first: "/personne/spi" before "/personne/{spi}"
            if op.path == path:
                return op
        return next((op for op in candidates if op.matches(path)), None)

    def by_id(self, operation_id: str) -> Operation | None:
        return next((o for o in self.operations if o.operation_id == operation_id), None)

    def problem_schema(self) -> dict[str, Any] | None:
        schemas = self.resolved.get("components", {}).get("schemas", {})
        problem: dict[str, Any] | None = schemas.get("Problem")
        return problem


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def _dialect(document: Mapping[str, Any]) -> str:
    if str(document.get("swagger", "")).startswith("2."):
        return "swagger-2.0"
    version = str(document.get("openapi", ""))
    if version.startswith("3.0"):
        return "openapi-3.0"
    if version.startswith("3.1"):
        return "openapi-3.1"
    raise ValueError(f"neither OpenAPI 3.0/3.1 nor Swagger 2.0: {version!r}")


def _base_path(document: Mapping[str, Any], dialect: str) -> str:
    if dialect == "swagger-2.0":
        return str(document.get("basePath", "")).rstrip("/")
    servers = document.get("servers") or [{"url": "/"}]
    return urlsplit(str(servers[0]["url"])).path.rstrip("/")


def _responses(op: Mapping[str, Any], dialect: str, produces: list[str]) -> dict[str, Response]:
    out: dict[str, Response] = {}
    for status, response in (op.get("responses") or {}).items():
        content: dict[str, dict[str, Any] | None] = {}
        if dialect == "swagger-2.0":
            if "schema" in response:
                content = dict.fromkeys(produces, response["schema"])
        else:
            for media, item in (response.get("content") or {}).items():
                content[media] = (item or {}).get("schema")
        out[str(status)] = Response(str(status), content, response)
    return out


def build_document(raw: Mapping[str, Any]) -> ApiDocument:
    dialect = _dialect(raw)
    resolved = jsonschema_rs.dereference(dict(raw), draft=jsonschema_rs.Draft202012, offline=True)
    base = _base_path(raw, dialect)
    operations: list[Operation] = []
    for path, item in (resolved.get("paths") or {}).items():
        shared = list(item.get("parameters") or [])
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            own = list(op.get("parameters") or [])
            names = {(p.get("name"), p.get("in")) for p in own}
            params = [p for p in shared if (p.get("name"), p.get("in")) not in names] + own
            produces = list(op.get("produces") or resolved.get("produces") or [])
            full = base + path
            operations.append(
                Operation(
                    method=method,
                    path=full,
                    operation_id=op.get("operationId"),
                    parameters=tuple(params),
                    responses=_responses(op, dialect, produces),
                    raw=op,
                    _pattern=_template_pattern(full),
                )
            )
    title = str((raw.get("info") or {}).get("title", ""))
    return ApiDocument(title, dialect, base, raw, resolved, tuple(operations))


@cache
def _provider_document(path: Path) -> ApiDocument:
    return build_document(json.loads(path.read_text(encoding="utf-8")))


def provider_document(name: str, folder: Path | None = None) -> ApiDocument:
    """One of the provider's documents (``IMPOT_PARTICULIER``, ``R2P``, ``FICOBA``); skips
    without them."""
    return _provider_document((folder or contracts_folder()) / name)


@cache
def guichet_document(key: str, origin: str = ORIGIN) -> ApiDocument:
    """guichet's published document ``key`` (``impot_particulier``, ``r2p``,
    ``impot_particulier_os``, ``ficoba``), as ``guichet.apis.load_openapi`` serves it."""
    try:
        raw = load_openapi(key, origin)
    except (KeyError, ValueError, FileNotFoundError, ModuleNotFoundError) as exc:
        raise AssertionError(f"guichet publishes no OpenAPI document {key!r}: {exc!r}") from exc
    return build_document(raw)


# --- media types ---------------------------------------------------------------------------


def media_type_of(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def media_type_matches(declared: str, content_type: str | None) -> bool:
    """``Content-Type`` against a documented media type; the provider's ``*/*`` is JSON."""
    actual = media_type_of(content_type)
    declared = declared.strip().lower()
    return actual == (JSON_MEDIA if declared == ANY_MEDIA else declared)


# --- schemas -------------------------------------------------------------------------------


def json_types(schema: Mapping[str, Any]) -> set[str]:
    """The JSON types a dereferenced schema declares (3.0 ``nullable`` and 3.1 type lists
    included), through ``allOf`` / ``anyOf`` / ``oneOf``; empty when it says none."""
    declared = schema.get("type")
    types = set(declared) if isinstance(declared, list) else {declared} if declared else set()
    if not types and ("properties" in schema or "additionalProperties" in schema):
        types.add("object")
    if not types and "items" in schema:
        types.add("array")
    if schema.get("nullable") is True or schema.get("x-nullable") is True:
        types.add("null")
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(key) or []:
            types |= json_types(branch)
    if "enum" in schema and not types:
        types = {_json_type(v) for v in schema["enum"]}
    return types


def object_view(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A schema's own keywords merged with those of its ``allOf`` and of its non-null
    ``anyOf`` / ``oneOf`` branch, for reading property names and item schemas."""
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k not in ("allOf",)}
    for branch in schema.get("allOf") or []:
        view = object_view(branch)
        merged.setdefault("properties", {}).update(view.get("properties") or {})
        for key in ("items", "type"):
            if key in view and key not in merged:
                merged[key] = view[key]
    for key in ("anyOf", "oneOf"):
        branches = [b for b in schema.get(key) or [] if json_types(b) != {"null"}]
        if len(branches) == 1:
            view = object_view(branches[0])
            merged.setdefault("properties", {}).update(view.get("properties") or {})
            if "items" in view:
                merged.setdefault("items", view["items"])
    return merged


def strict_schema(schema: Mapping[str, Any], nullable: Iterable[str] = NULLABLE) -> dict[str, Any]:
    """A response schema read the provider's way, as a draft-4 JSON Schema.

    Every object with ``properties`` gets ``additionalProperties: false`` (a property the
    provider does not define is a deviation); OpenAPI 3.0 semantics: no implicit null, a
    null is allowed only where the schema says ``nullable`` or for a property named in
    ``nullable`` (a 3.1 ``"null"`` type is dropped elsewhere); ``int32``/``int64`` are
    integers (draft 4: ``1.0`` is not one), ``number`` takes integers too.
    """
    return _strict(schema, frozenset(nullable), None)


def _strict(
    schema: Mapping[str, Any], nullable: frozenset[str], name: str | None
) -> dict[str, Any]:
    if "$ref" in schema:
        raise ValueError(f"unresolved (circular?) reference {schema['$ref']!r}")
    out: dict[str, Any] = {k: schema[k] for k in _ASSERTIONS if k in schema}
    types = json_types({k: v for k, v in schema.items() if k not in ("allOf", "anyOf", "oneOf")})
    may_be_null = schema.get("nullable") is True or schema.get("x-nullable") is True
    may_be_null = may_be_null or (name is not None and name in nullable)
    types.discard("null")
    if types:
        listed = sorted(types) + (["null"] if may_be_null else [])
        out["type"] = listed[0] if len(listed) == 1 else listed
        if may_be_null and "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    if "properties" in schema:
        out["properties"] = {
            prop: _strict(sub, nullable, prop) for prop, sub in schema["properties"].items()
        }
        out["additionalProperties"] = False
    elif isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict(schema["additionalProperties"], nullable, None)
    elif schema.get("additionalProperties") is False:
        out["additionalProperties"] = False
    if isinstance(schema.get("items"), dict):
        out["items"] = _strict(schema["items"], nullable, None)
    for key in ("allOf", "anyOf", "oneOf"):
        branches = [
            _strict(b, nullable, name) for b in schema.get(key) or [] if json_types(b) != {"null"}
        ]
        if branches:
            out[key] = branches
    return out


@dataclass(frozen=True)
class SchemaError:
    path: str  # a JSON path into the answer's body, "$.situationsIR[0].rfr"
    message: str


def json_path(parts: Iterable[str | int]) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _describe(error: Any, nullable: frozenset[str]) -> Iterator[SchemaError]:
    """One error per offending value, in words that group well across answers."""
    path = list(error.instance_path)
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
        for prop in kind.unexpected:
            yield SchemaError(json_path([*path, prop]), "a property the schema does not define")
        return
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Type):
        listed = [str(t) for t in (kind.types if isinstance(kind.types, list) else [kind.types])]
        expected = "/".join(sorted(t for t in listed if t != "null"))
        expected += " or null" if "null" in listed else ""
        actual = _json_type(error.instance)
        if actual == "null":
            allowed = ", ".join(sorted(nullable))
            message = f"null where the schema says {expected} (only {allowed} may be null)"
        else:
            shown = json.dumps(error.instance, ensure_ascii=False)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            message = f"{actual} where the schema says {expected} (e.g. {shown})"
        yield SchemaError(json_path(path), message)
        return
    yield SchemaError(json_path(path), str(error.message))


def provider_errors(
    schema: Mapping[str, Any], body: Any, nullable: Iterable[str] = NULLABLE
) -> list[SchemaError]:
    """``body`` against a response schema read the provider's way (``strict_schema``)."""
    names = frozenset(nullable)
    validator = jsonschema_rs.Draft4Validator(strict_schema(schema, names))
    return [e for error in validator.iter_errors(body) for e in _describe(error, names)]


def guichet_errors(schema: Mapping[str, Any], body: Any) -> list[SchemaError]:
    """``body`` against a schema of guichet's document as published (OpenAPI 3.1 = JSON
    Schema 2020-12; formats annotate)."""
    validator = jsonschema_rs.Draft202012Validator(dict(schema))
    return [e for error in validator.iter_errors(body) for e in _describe(error, NULLABLE)]


# --- deviations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Deviation:
    operation: str
    check: str  # what was compared: "provider schema", "guichet schema", "status", …
    path: str  # a JSON path into the body, or "" for the answer as a whole
    message: str
    persona: str = ""
    year: int | None = None
    request: str = ""


def _generic(path: str) -> str:
    return re.sub(r"\[\d+\]", "[*]", path)


@dataclass
class Deviations:
    """Everything that differs, collected over many calls and reported once, grouped by
    (operation, check, JSON path, message) with the personas and years it was seen for."""

    items: list[Deviation] = field(default_factory=list)
    calls: int = 0

    def add(self, deviation: Deviation) -> None:
        self.items.append(deviation)

    def __bool__(self) -> bool:
        return bool(self.items)

    def report(self, limit: int = 6) -> str:
        groups: dict[tuple[str, str, str, str], list[Deviation]] = defaultdict(list)
        for d in self.items:
            groups[(d.operation, d.check, _generic(d.path), d.message)].append(d)
        lines = [f"{len(self.items)} deviations in {len(groups)} kinds, over {self.calls} calls:"]
        for (operation, check, path, message), seen in sorted(groups.items()):
            where = f" at {path}" if path else ""
            lines.append(f"- {operation} [{check}]{where}: {message}")
            who = sorted({(d.persona, d.year, d.request) for d in seen}, key=str)
            shown = [
                f"{persona or '-'}" + (f" {year}" if year else "") + (f" ({req})" if req else "")
                for persona, year, req in who[:limit]
            ]
            more = f" … and {len(who) - limit} more" if len(who) > limit else ""
            lines.append(f"    seen {len(seen)}×: " + "; ".join(shown) + more)
        return "\n".join(lines)

    def check(self) -> None:
        if self.items:
            pytest.fail(self.report(), pytrace=False)

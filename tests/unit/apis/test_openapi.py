"""The published OpenAPI documents: valid OpenAPI 3.1, one operation per catalogue entry,
guichet's additions marked, each data property naming the data scope that releases it.

(The comparison of guichet's documents with the provider's own files is another test's.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import yaml
from starlette.routing import Router
from starlette.testclient import TestClient

from guichet.apis import DOCUMENTS, OpenApiDocument, document_of, load_openapi
from guichet.catalog.products import (
    FACTURE_FIELD_SCOPES,
    IFI_FIELD_SCOPES,
    IR_FIELD_SCOPES,
    LEP_FIELD_SCOPES,
    OFFERS_OF_SERVICE,
    PRODUCTS,
    TH_FIELD_SCOPES,
    Operation,
)
from guichet.gateway.app import OPENAPI_DOCUMENTS, openapi_routes

ORIGIN = "https://127.0.0.1:8443"

# The response codes each operation has in the document guichet follows for it: the provider's
# OpenAPI documents (api-impot-particulier.json, api-r2p.json; the one success the provider
# declares under ``default`` counted as 200) and, for OS1–OS9, the convention's codes
# [003 annexe 3 §3.5]. Any other code is guichet's and must say so.
_IR = frozenset({"200", "400", "403"})
_IFI = frozenset({"200", "400", "500"})
PROVIDER_CODES: dict[str, frozenset[str]] = {
    "SituationsIrAssiettesV1": _IR,
    "SituationsIrAssiettesFCV1": _IR,  # 200 is the provider's "default"
    "SituationsIrAssiettesMultipleV1": _IR,
    "SituationsIrAssiettesMultipleFCV1": _IR,
    "derniereSituationsIrAssiettesV1": _IR,
    "derniereSituationsIrAssiettesFCV1": _IR,
    "situationsIrAssiettesDeuxDernierMillesimeV1": _IR,
    "situationsIrAssiettesDeuxDernierMillesimeFCV1": _IR,
    "SituationsIrFacturesV1": _IR,
    "SituationsIrFacturesFCV1": _IR,
    "SituationIfiIsfV1": _IFI,
    "SituationIfiIsfFCV1": _IFI,
    "SituationsTHPV1": _IR,
    "SituationsTHPFCV1": _IR,
    "Ouverturelep": frozenset({"200", "204", "400", "403", "410", "500"}),
    **{o.operation: frozenset({"200", "403", "404", "500"}) for o in OFFERS_OF_SERVICE},
    **{
        op_id: frozenset({"200", "401", "403", "404"})
        for op_id in ("RechercheParCriteres", "RechercheParEtatCivil", "RechercheParSPI")
    },
    # api-ficoba.json: the health check's 200 and 503, each search's 200 and 400.
    "getInfo": frozenset({"200", "503"}),
    **{
        op_id: frozenset({"200", "400"})
        for op_id in (
            "rechercherCompteParNumCpte",
            "rechercherCompteParSiretSiren",
            "rechercherComptesSpi",
            "rechercherComptesPersonnePhysique",
            "rechercherComptesPerPro",
            "rechercherMultiDetention",
            "rechercherCompteParNumCpte_1",
        )
    },
}
# The four values the convention lets be null [003 annexe 3 §5]; any other is omitted.
NULLABLE = {"rfr", "sitFam", "sitParIso", "revenuBrutGlobal"}


def _documents() -> dict[str, dict[str, Any]]:
    return {key: load_openapi(key, ORIGIN + "/") for key in DOCUMENTS}


def _resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, op in item.items():
            assert method in ("get", "post"), path  # POST: API FICOBA's searches
            yield path, op


def _catalogue() -> list[Operation]:
    return [op for product in PRODUCTS.values() for op in product.operations]


@pytest.mark.parametrize("key", sorted(DOCUMENTS))
def test_each_document_is_valid_openapi_3_1(key: str) -> None:
    document = load_openapi(key, ORIGIN + "/")
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": ORIGIN + DOCUMENTS[key].base_path}]
    schemathesis.openapi.from_dict(document).validate()  # the OpenAPI 3.1 meta-schema


def test_the_registry_is_consistent() -> None:
    slugs = [d.slug for d in DOCUMENTS.values()]
    assert len(set(slugs)) == len(slugs)
    assert {d.slug: d.key for d in DOCUMENTS.values()} == OPENAPI_DOCUMENTS
    for document in DOCUMENTS.values():
        assert document.base_path.startswith(PRODUCTS[document.product].base_path)
        assert document.operations(), document.key
    ip = PRODUCTS["impot_particulier"]
    by_name = {op.name: op for op in ip.operations}
    assert document_of(by_name["ir_assiettes_spi"]).key == "impot_particulier"
    assert document_of(by_name["os1_rfr"]).key == "impot_particulier_os"
    main = DOCUMENTS["impot_particulier"]
    assert main.path_of(by_name["lep_spi"]) == (
        "/spi/{spi}/lep/departement/{departement}/annrev/{annrev}/bareme/{bareme}"
    )
    assert DOCUMENTS["impot_particulier_os"].path_of(by_name["os7_locaux_th"]) == "/os7/{annee}"
    assert main.url("https://a/") == "https://a/openapi/impotparticulier.yaml"
    with pytest.raises(ValueError, match="unknown OpenAPI document"):
        load_openapi("impotparticulier", ORIGIN)


def test_every_catalogue_operation_is_in_exactly_one_document() -> None:
    documents = _documents()
    seen: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for key, document in documents.items():
        for path, described in _operations(document):
            name = described.get("x-guichet-operation")
            assert isinstance(name, str), f"{key} {path}: no x-guichet-operation"
            assert name not in seen, f"{name} in {seen[name][0]} and {key}"
            seen[name] = (key, path, described)
        ids = [described["operationId"] for _, described in _operations(document)]
        assert len(set(ids)) == len(ids), key
    catalogue = _catalogue()
    assert set(seen) == {op.name for op in catalogue}
    for op in catalogue:
        key, path, described = seen[op.name]
        home: OpenApiDocument = document_of(op)
        assert key == home.key, op.name
        assert path == home.path_of(op), op.name
        assert described["operationId"] == op.operation_id, op.name
        assert path in documents[key]["paths"]
        assert described is documents[key]["paths"][path][op.method.lower()], op.name
        assert described["security"] == [{"bearer": [op.resource_scope], "mutualTLS": []}]
        if op.max_body_bytes:
            body = described["requestBody"]
            assert body["required"] is True, op.name
            assert list(body["content"]) == [op.request_media_type], op.name
        else:
            assert "requestBody" not in described, op.name
        success = _resolve(documents[key], described["responses"]["200"])
        assert list(success["content"]) == [op.media_type], op.name


@pytest.mark.parametrize("key", sorted(DOCUMENTS))
def test_every_code_the_followed_document_lacks_is_marked_an_addition(key: str) -> None:
    document = load_openapi(key, ORIGIN)
    # Refusals are problem+json, or the provider's own error shape (FICOBA's ReponseErreur).
    own_shape = PRODUCTS[DOCUMENTS[key].product].error_format == "reponse_erreur"
    error_media = ["application/json"] if own_shape else ["application/problem+json"]
    for path, op in _operations(document):
        provider = PROVIDER_CODES[op["operationId"]]
        codes = set(op["responses"])
        assert provider <= codes, f"{path}: the provider's {sorted(provider - codes)} missing"
        for code, response in op["responses"].items():
            marked = _resolve(document, response).get("x-guichet-addition") is True
            assert marked is (code not in provider), f"{path} {code}"
            if code.startswith(("4", "5")):
                content = _resolve(document, response)["content"]
                assert list(content) == error_media, f"{path} {code}"


@pytest.mark.parametrize("key", ["impot_particulier", "impot_particulier_os"])
def test_guichets_headers_and_limits_are_marked(key: str) -> None:
    document = load_openapi(key, ORIGIN)
    components = document["components"]
    for name in ("X-Correlation-ID", "RateLimit-Policy", "RateLimit", "Retry-After-Requis"):
        assert components["headers"][name]["x-guichet-addition"] is True, name
    assert components["schemas"]["Problem"]["x-guichet-addition"] is True
    problem = components["schemas"]["Problem"]["properties"]
    assert set(problem) == {
        "type",
        "title",
        "status",
        "detail",
        "code",
        "codeapp",
        "correlationId",
        "instance",
        "field",
    }
    assert problem["codeapp"]["type"] == "integer"
    for path, op in _operations(document):
        success = _resolve(document, op["responses"]["200"])
        assert set(success["headers"]) == {"X-Correlation-ID", "RateLimit-Policy", "RateLimit"}
        too_many = _resolve(document, op["responses"]["429"])
        assert too_many["headers"]["Retry-After"]["$ref"].endswith("/Retry-After-Requis"), path


def test_impot_particulier_parameters() -> None:
    document = load_openapi("impot_particulier", ORIGIN)
    assert "## Ce que guichet ajoute" in document["info"]["description"]
    assert document["components"]["securitySchemes"]["mutualTLS"]["x-guichet-addition"] is True
    correlation = document["components"]["parameters"]["XCorrelationID"]
    assert correlation["required"] is True
    assert correlation["schema"] == {
        "type": "string",
        "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    }
    for path, op in _operations(document):
        params = [_resolve(document, p) for p in op["parameters"]]
        names = [p["name"] for p in params]
        assert names[:1] == ["Authorization"], path
        assert {"X-Correlation-ID", "ID_Teleservice"} <= set(names), path
        franceconnect = not path.startswith("/spi/")
        assert ("X-FranceConnect-OAuth" in names) is franceconnect, path
        in_path = {p["name"]: p["schema"] for p in params if p["in"] == "path"}
        assert set(in_path) == set(re.findall(r"\{(\w+)\}", path)), path
        if "annrev" in in_path:
            # The provider's types: an int32 integer, a string for TH and the LEP.
            textual = "/th/" in path or "/lep/" in path
            expected = "string" if textual else "integer"
            assert in_path["annrev"]["type"] == expected, path
            if not textual:
                assert in_path["annrev"]["format"] == "int32", path
    # The one FranceConnect operation whose header the provider's document omits.
    multiple = document["paths"]["/situations/ir/assiettes/multiple/annrev/{annrev}"]["get"]
    header = _resolve(document, multiple["parameters"][1])
    assert header["name"] == "X-FranceConnect-OAuth"
    assert header["x-guichet-addition"] is True
    fc = document["paths"]["/situations/ir/assiettes/annrev/{annrev}"]["get"]
    assert fc["responses"]["200"]["x-guichet-provider-status"] == "default"


def _walk(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for k, v in node.items():
            yield from _walk(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{where}/{i}")


def test_only_the_four_convention_values_may_be_null() -> None:
    document = load_openapi("impot_particulier", ORIGIN)
    schemas = document["components"]["schemas"]
    nullable: set[str] = set()
    for where, node in _walk(schemas):
        kind = node.get("type")
        if isinstance(kind, list) and "null" in kind:
            nullable.add(where.rsplit("/", 1)[1])
    assert nullable == NULLABLE
    for name, schema in schemas.items():
        if name != "Problem" and schema.get("type") == "object":
            assert schema.get("additionalProperties") is False, name


def _property_scopes(schema: dict[str, Any]) -> dict[str, str | None]:
    return {name: prop.get("x-guichet-data-scope") for name, prop in schema["properties"].items()}


def test_each_data_property_names_the_scope_that_releases_it() -> None:
    schemas = load_openapi("impot_particulier", ORIGIN)["components"]["schemas"]
    ir_top = {k: v for k, v in IR_FIELD_SCOPES.items() if not k.startswith("rev.")}
    ir_rev = {k[4:]: v for k, v in IR_FIELD_SCOPES.items() if k.startswith("rev.")}
    assert _property_scopes(schemas["RevsJAXBbean"]) == ir_rev
    multi = _property_scopes(schemas["SituationIRAssietteMultiJAXBbean"])
    assert multi.pop("rev") is None  # each category has its own scope
    assert multi == ir_top
    for name, extra in (
        ("SituationsIRAssiettesJAXBbean", {}),
        ("SituationsIRAssiettesMillesimeJAXBbean", {"annRevenu": None}),
        ("SituationsIRAssiettesFacturesJAXBbean", dict(FACTURE_FIELD_SCOPES)),
    ):
        scopes = _property_scopes(schemas[name])
        assert scopes.pop("rev") is None
        assert {k: v for k, v in scopes.items() if k not in extra} == {
            k: v for k, v in ir_top.items() if k in scopes
        }, name
        assert {k: v for k, v in scopes.items() if k in extra} == extra, name
    assert _property_scopes(schemas["SituationIfiIsfJAXBbean"]) == dict(IFI_FIELD_SCOPES)
    assert _property_scopes(schemas["SituationTHJAXBbean"]) == dict(TH_FIELD_SCOPES)
    assert _property_scopes(schemas["OuvertureLepJAXBbean"]) == dict(LEP_FIELD_SCOPES)


def test_the_gateway_serves_each_document_as_json_and_yaml() -> None:
    client = TestClient(Router(openapi_routes(ORIGIN)))
    for document in DOCUMENTS.values():
        expected = load_openapi(document.key, ORIGIN)
        as_json = client.get(f"/openapi/{document.slug}.json")
        assert as_json.status_code == 200
        assert as_json.json() == expected
        as_yaml = client.get(f"/openapi/{document.slug}.yaml")
        assert as_yaml.status_code == 200
        assert not re.search(r"[&*]id\d{3}", as_yaml.text)  # no aliases: a plain tree
        assert yaml.safe_load(as_yaml.text) == expected


def test_each_call_gets_its_own_copy() -> None:
    first = load_openapi("r2p", "https://a")
    first["paths"].clear()
    assert load_openapi("r2p", "https://b")["paths"]


def test_a_broken_document_would_be_caught() -> None:
    document = load_openapi("r2p", "https://a")
    document["paths"]["/personne"]["get"]["responses"] = "nope"
    with pytest.raises(Exception, match="nope"):
        schemathesis.openapi.from_dict(document).validate()


def test_ficoba_headers_bodies_and_error_shape() -> None:
    """API FICOBA's document: the provider's two required headers on every operation, a
    required JSON body on each search within the catalogue's size, refusals in the provider's
    ``ReponseErreur`` shape plus guichet's marked members, the health check's 503 exactly the
    provider's ``ResultatErreurApiSante``."""
    document = load_openapi("ficoba", ORIGIN)
    assert "## Ce que guichet ajoute" in document["info"]["description"]
    components = document["components"]
    assert components["securitySchemes"]["bearer"]["x-guichet-addition"] is True
    assert components["securitySchemes"]["mutualTLS"]["x-guichet-addition"] is True
    ficoba = PRODUCTS["ficoba"]
    limit = {op.max_body_bytes for op in ficoba.operations if op.max_body_bytes}
    assert limit == {16 * 1024}
    assert "16 Kio au plus" in document["info"]["description"]
    error = components["schemas"]["ErreurGuichet"]
    assert error["x-guichet-addition"] is True
    assert set(error["properties"]) == {"code", "message", "horodatage", "correlationId", "champ"}
    assert set(error["required"]) == {"code", "message", "horodatage", "correlationId"}
    provider_error = components["schemas"]["ReponseErreur"]
    assert set(provider_error["properties"]) == {"code", "message", "horodatage"}
    health = components["schemas"]["ResultatErreurApiSante"]["properties"]["erreur"]
    assert _resolve(document, health) == provider_error
    for path, op in _operations(document):
        params = {p["name"]: p for p in (_resolve(document, p) for p in op["parameters"])}
        request_id = "X-request-ID" if path == "/etatSante" else "X-Request-ID"
        assert set(params) == {"X-Correlation-ID", request_id}, path
        assert all(p["in"] == "header" and p["required"] is True for p in params.values())
        for code, response in op["responses"].items():
            if not code.startswith(("4", "5")):
                continue
            schema = _resolve(document, response)["content"]["application/json"]["schema"]
            expected = (
                components["schemas"]["ResultatErreurApiSante"]
                if (path, code) == ("/etatSante", "503")
                else error
            )
            assert _resolve(document, schema) == expected, f"{path} {code}"

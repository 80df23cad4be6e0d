"""The published OpenAPI documents: valid OpenAPI 3.1, one operation per catalogue entry."""

from __future__ import annotations

import pytest
import schemathesis

from guichet.apis import load_openapi
from guichet.catalog.products import PRODUCTS


@pytest.mark.parametrize("name", ["impot_particulier", "r2p"])
def test_document_is_valid_and_complete(name: str) -> None:
    document = load_openapi(name, "https://127.0.0.1:8443/")
    product = PRODUCTS[name]
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": f"https://127.0.0.1:8443{product.base_path}"}]
    schemathesis.openapi.from_dict(document).validate()  # the OpenAPI 3.1 meta-schema
    operations = {
        op["operationId"]: path for path, item in document["paths"].items() for op in item.values()
    }
    assert operations == {op.name: op.path for op in product.operations}
    for path, item in document["paths"].items():
        op = item["get"]
        scope = next(o.resource_scope for o in product.operations if o.name == op["operationId"])
        assert op["security"] == [{"bearer": [scope], "mutualTLS": []}], path
        refs = {p["$ref"].rsplit("/", 1)[1] for p in op["parameters"]}
        assert {"XCorrelationID", "IDTeleservice"} <= refs
        assert set(op["responses"]) == {"200", "400", "401", "403", "404", "429", "500", "503"}
    correlation = document["components"]["parameters"]["XCorrelationID"]
    assert correlation["required"] is True
    assert correlation["schema"]["format"] == "uuid"
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) == {
        "type",
        "title",
        "status",
        "detail",
        "code",
        "correlationId",
        "instance",
        "field",
    }


def test_each_call_gets_its_own_copy() -> None:
    first = load_openapi("r2p", "https://a")
    first["paths"].clear()
    assert load_openapi("r2p", "https://b")["paths"]


def test_a_broken_document_would_be_caught() -> None:
    document = load_openapi("r2p", "https://a")
    document["paths"]["/personne"]["get"]["responses"] = "nope"
    with pytest.raises(Exception, match="nope"):
        schemathesis.openapi.from_dict(document).validate()

"""The provider's APIs, one package each, and their published OpenAPI documents.

``DOCUMENTS`` is the registry of the documents each gateway serves: a key, the YAML file
of an API package, the URL (``/openapi/<slug>.json`` and ``.yaml``) and the base path of
the document's server. A document covers the operations of its catalogue product whose
route (``product.base_path + operation.path``) lies under its base path, the longest base
path winning: API Impôt Particulier's ``/impotparticulier/1.0`` document holds the
provider's interface, its ``/impotparticulier`` document the convention's OS1–OS9 contract.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Any, Final

import yaml

from guichet.catalog.products import Operation, product


@dataclass(frozen=True, slots=True)
class OpenApiDocument:
    """One published OpenAPI document."""

    key: str  # what ``load_openapi`` takes
    product: str  # the catalogue product it describes (``catalog.products.PRODUCTS``)
    package: str  # the API package holding the file, under ``guichet.apis``
    file: str
    base_path: str  # the path of the document's server, below the environment's origin
    slug: str  # served at ``/openapi/<slug>.json`` and ``/openapi/<slug>.yaml``
    label: str  # how the portal names it, in French

    def url(self, origin: str, extension: str = "yaml") -> str:
        """Where an environment (``origin``, e.g. ``https://127.0.0.1:8443``) serves it."""
        return f"{origin.rstrip('/')}/openapi/{self.slug}.{extension}"

    def operations(self) -> tuple[Operation, ...]:
        """The product's operations this document describes, in the catalogue's order."""
        return tuple(op for op in product(self.product).operations if document_of(op) is self)

    def path_of(self, operation: Operation) -> str:
        """The operation's path in this document (its route less the server's base path)."""
        route = product(self.product).base_path + operation.path
        if not route.startswith(self.base_path + "/"):
            raise ValueError(f"{operation.name} is not under {self.base_path}")
        return route[len(self.base_path) :]


DOCUMENTS: Final = MappingProxyType(
    {
        d.key: d
        for d in (
            OpenApiDocument(
                key="impot_particulier",
                product="impot_particulier",
                package="impot_particulier",
                file="openapi.yaml",
                base_path="/impotparticulier/1.0",
                slug="impotparticulier",
                label="Impôt Particulier",
            ),
            OpenApiDocument(
                key="impot_particulier_os",
                product="impot_particulier",
                package="impot_particulier",
                file="openapi_os.yaml",
                base_path="/impotparticulier",
                slug="impotparticulier-os",
                label="Impôt Particulier, offres de service OS1 à OS9",
            ),
            OpenApiDocument(
                key="r2p",
                product="r2p",
                package="r2p",
                file="openapi.yaml",
                base_path="/r2p/v1",
                slug="r2p",
                label="R2P",
            ),
            OpenApiDocument(
                key="ficoba",
                product="ficoba",
                package="ficoba",
                file="openapi.yaml",
                base_path="/fcb-masrestit/api/v2",
                slug="ficoba",
                label="FICOBA",
            ),
        )
    }
)


def document_of(operation: Operation) -> OpenApiDocument:
    """The document describing ``operation``: the one of its product with the longest base
    path its route lies under."""
    best: OpenApiDocument | None = None
    for document in DOCUMENTS.values():
        prod = product(document.product)
        if operation not in prod.operations:
            continue
        if (prod.base_path + operation.path).startswith(document.base_path + "/") and (
            best is None or len(document.base_path) > len(best.base_path)
        ):
            best = document
    if best is None:
        raise ValueError(f"no OpenAPI document covers {operation.name}")
    return best


@cache
def _document(key: str) -> dict[str, Any]:
    document = DOCUMENTS[key]
    text = files(f"guichet.apis.{document.package}").joinpath(document.file).read_text("utf-8")
    loaded = yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise ValueError(f"{document.file} of {document.package!r} is not a mapping")
    # Through JSON: what is served as JSON, and a plain tree (the YAML's anchors and merge
    # keys share objects, which a YAML dump would otherwise write back as aliases).
    tree: dict[str, Any] = json.loads(json.dumps(loaded, ensure_ascii=False))
    return tree


def load_openapi(key: str, server_url: str) -> dict[str, Any]:
    """The OpenAPI document ``key`` of ``DOCUMENTS`` (e.g. ``"r2p"``).

    ``server_url`` is the environment's gateway origin (``https://127.0.0.1:8443``); the
    document's single server is that origin followed by the document's base path. A fresh
    copy each call, so callers may change it.
    """
    try:
        base_path = DOCUMENTS[key].base_path
    except KeyError:
        raise ValueError(f"unknown OpenAPI document {key!r}") from None
    document = copy.deepcopy(_document(key))
    document["servers"] = [{"url": server_url.rstrip("/") + base_path}]
    return document

"""The provider's APIs, one package each, and their published OpenAPI documents."""

from __future__ import annotations

import copy
from functools import cache
from importlib.resources import files
from typing import Any

import yaml

from guichet.catalog.products import product


@cache
def _document(name: str) -> dict[str, Any]:
    text = files(f"guichet.apis.{name}").joinpath("openapi.yaml").read_text(encoding="utf-8")
    loaded = yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise ValueError(f"openapi.yaml of {name!r} is not a mapping")
    return loaded


def load_openapi(name: str, server_url: str) -> dict[str, Any]:
    """The OpenAPI document of the product ``name`` (catalogue key, e.g. ``"r2p"``).

    ``server_url`` is the environment's gateway origin (``https://127.0.0.1:8443``); the
    document's single server is that origin followed by the product's base path. A fresh
    copy each call, so callers may change it.
    """
    base_path = product(name).base_path
    document = copy.deepcopy(_document(name))
    document["servers"] = [{"url": server_url.rstrip("/") + base_path}]
    return document

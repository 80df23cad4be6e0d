"""Prometheus metrics of the gateway (served by the portal's ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CALLS = Counter(
    "guichet_gateway_calls_total",
    "API calls through the gateway, by environment, API and outcome code.",
    ["environment", "api", "outcome"],
)
LATENCY = Histogram(
    "guichet_gateway_call_seconds",
    "Time from request to response, journal write included.",
    ["environment"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

"""Prometheus metrics of the gateway, per worker process; ``guichet serve gateway --workers N
--metrics-port P`` serves them aggregated over the workers (multiprocess mode,
``guichet.workers.Supervisor``); a single process serves its own on that port.

Refusals by code are ``guichet_gateway_calls_total{outcome=<code>}``.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import Counter, Gauge, Histogram

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
JOURNAL_LATENCY = Histogram(
    "guichet_gateway_journal_seconds",
    "Time a call waits for its journal record to be committed.",
    ["environment"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
WORKERS = Gauge(
    "guichet_gateway_workers",
    "Gateway worker processes alive (each live worker counts 1).",
    multiprocess_mode="livesum",
)
DATABASE_UNREACHABLE = Gauge(
    "guichet_gateway_database_unreachable",
    "1 while calls fail because the database does not answer (503 database_unavailable or "
    "journal_unavailable), else 0.",
    multiprocess_mode="livemax",
)

_live_workers: Callable[[], int] | None = None


def count_live_workers(source: Callable[[], int]) -> None:
    """Where ``/healthz`` reads the number of live workers: the supervisor's count."""
    global _live_workers
    _live_workers = source


def live_workers() -> int:
    """Live workers of this origin (1: this process, when it is not supervised)."""
    return _live_workers() if _live_workers is not None else 1

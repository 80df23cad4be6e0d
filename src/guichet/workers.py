"""Serving one origin with one or several worker processes (SO_REUSEPORT), supervised.

Workers share nothing in memory: policy through the database generation, quotas through
Redis (``GUICHET_REDIS_URL``), the journal chain through the database's row lock.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from types import FrameType

from guichet.logs import event
from guichet.settings import Settings, use_settings

log = logging.getLogger(__name__)

# The metrics listen on this machine only: the scraper runs here, or goes through a tunnel.
METRICS_HOST = "127.0.0.1"


def _serve_one(
    settings: Settings,
    origin: str,
    host: str,
    port: int,
    tls: bool,
    reuse: bool,
    sock: socket.socket | None = None,
    live: Synchronized[int] | None = None,
) -> None:
    from guichet.db.migrate import is_current
    from guichet.habilitation.models import Environment
    from guichet.logs import configure
    from guichet.platform import Listener, Platform, TlsFiles, bind, run_loop, serve
    from guichet.runtime import open_runtime

    use_settings(settings)
    configure(settings.log_level)
    runtime = open_runtime(settings, migrate=False)
    if not is_current(runtime.engine):
        print("La base n'est pas à jour : lancez `guichet init` d'abord.", file=sys.stderr)
        sys.exit(2)
    pki = settings.data_dir / "pki"
    files = TlsFiles(
        server_cert=settings.server_cert_file or pki / "server.crt",
        server_key=settings.server_key_file or pki / "server.key",
        client_cas=[] if settings.client_ca_file else [pki / "ca.crt"],
    )
    # The portal is served by one process (gateways by several): it runs the scheduled
    # operations, and their lock keeps a second portal (another host) from doing it twice.
    platform = Platform(runtime, files, scheduler=origin == "portal")
    # A socket handed down (the proxy's Unix socket) is shared by the workers as it is.
    listening = sock or bind(host, port, reuse_port=reuse)
    if origin == "portal":
        listener = Listener(origin, platform.portal_app(), listening, None)
    elif origin == "federation":
        listener = Listener(origin, platform.federation_app(), listening, None)
    else:
        context = platform.ssl_context() if tls else None
        app = platform.gateway_app(Environment(origin))
        listener = Listener(origin, app, listening, context)
    if origin not in ("portal", "federation"):
        from guichet.gateway.metrics import WORKERS, count_live_workers

        WORKERS.set(1)
        if live is not None:
            count_live_workers(lambda: int(live.value))
    run_loop(serve(platform, [listener]))


def serve_origin(
    settings: Settings,
    origin: str,
    host: str,
    port: int,
    workers: int,
    tls: bool,
    unix_socket: Path | None = None,
    metrics_port: int | None = None,
) -> None:
    """Serve ``origin`` on ``host:port`` (each worker binds it, SO_REUSEPORT), or on the
    proxy's Unix socket ``unix_socket`` (bound once here, inherited by the workers); with
    several workers, under a ``Supervisor``. ``metrics_port``: the origin's Prometheus
    metrics on ``127.0.0.1`` (all its workers together)."""
    sock = None
    if unix_socket is not None:
        from guichet.platform import bind_unix

        try:
            sock = bind_unix(unix_socket, settings.proxy_socket_group)
        except OSError as exc:
            print(
                f"Impossible d'écouter sur {unix_socket} : {exc.strerror or exc}.", file=sys.stderr
            )
            sys.exit(2)
    # The workers sharing the quotas in Redis are this origin's (issue 13).
    settings = settings.model_copy(update={"quota_group": origin, "workers": workers})
    if workers == 1:
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, METRICS_HOST)
        _serve_one(settings, origin, host, port, tls, reuse=False, sock=sock)
        return
    # Each worker knows how many share the quota and its own slot (its share if Redis fails).
    settings = settings.model_copy(update={"workers": workers, "data_dir": Path(settings.data_dir)})
    Supervisor(settings, origin, host, port, tls, sock, metrics_port).run()


class Supervisor:
    """The parent of ``workers`` worker processes: it logs a worker's death and replaces it
    (same slot: same share of the quotas), keeps the count of live workers where each
    worker's ``/healthz`` reads it, and serves the workers' metrics, aggregated, on
    ``127.0.0.1:metrics_port`` (Prometheus multiprocess mode, files under
    ``DATA_DIR/metrics/<origin>``). SIGTERM or SIGINT is forwarded to every worker, and
    nobody is replaced any more."""

    def __init__(
        self,
        settings: Settings,
        origin: str,
        host: str,
        port: int,
        tls: bool,
        sock: socket.socket | None,
        metrics_port: int | None,
    ) -> None:
        self.settings = settings
        self.origin = origin
        self.args = (origin, host, port, tls, True, sock)
        self.metrics_port = metrics_port
        self.ctx = multiprocessing.get_context("spawn")
        self.live = self.ctx.Value("i", 0)
        self.procs: dict[int, BaseProcess] = {}
        self.started: dict[int, float] = {}
        self.deaths: dict[int, int] = {}
        self.stopping = False
        self.metrics_dir = settings.resolved_metrics_dir / origin

    def run(self) -> None:
        from guichet.logs import configure

        configure(self.settings.log_level)
        # Multiprocess mode: each worker writes its samples to files in this directory,
        # read together at scrape time. Set before the workers import prometheus_client.
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        self.metrics_dir.mkdir(parents=True, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir)
        if self.metrics_port is not None:
            self._serve_metrics(self.metrics_port)
        for slot in range(self.settings.workers):
            self._spawn(slot, respawned=False)
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        exit_code = 0
        while self.procs:
            sentinels = {p.sentinel: slot for slot, p in self.procs.items()}
            for ready in wait(list(sentinels), timeout=1.0):
                slot = sentinels[ready]  # type: ignore[index]
                proc = self.procs.pop(slot)
                proc.join()
                self._mark_dead(proc)
                code = proc.exitcode if proc.exitcode is not None else 0
                if self.stopping:
                    exit_code = max(exit_code, code if code > 0 else 0)
                    continue
                exit_code = self._replace(slot, proc, code)
            self.live.value = sum(p.is_alive() for p in self.procs.values())
        sys.exit(exit_code)

    def _spawn(self, slot: int, *, respawned: bool) -> None:
        settings = self.settings.model_copy(
            update={"worker_slot": slot, "worker_respawned": respawned}
        )
        proc = self.ctx.Process(
            target=_serve_one, args=(settings, *self.args, self.live), daemon=False
        )
        proc.start()
        self.procs[slot] = proc
        self.started[slot] = time.monotonic()
        self.live.value = sum(p.is_alive() for p in self.procs.values())

    def _replace(self, slot: int, proc: BaseProcess, code: int) -> int:
        """Log the death, replace the worker; a worker that cannot start (exit code 2: the
        database is not migrated, a setting is refused) stops the whole origin instead."""
        lived = time.monotonic() - self.started[slot]
        event(
            log,
            "workers.died",
            logging.ERROR,
            origin=self.origin,
            slot=slot,
            pid=proc.pid,
            exitcode=code,
            lived_seconds=f"{lived:.1f}",
        )
        if code == 2:
            self.stopping = True
            self._forward(signal.SIGTERM, None)
            return 2
        # A worker dying young again and again is not replaced in a tight loop.
        self.deaths[slot] = self.deaths.get(slot, 0) + 1 if lived < 10 else 0
        if self.deaths[slot]:
            time.sleep(min(10.0, 0.5 * 2 ** (self.deaths[slot] - 1)))
        self._spawn(slot, respawned=True)
        event(
            log,
            "workers.replaced",
            logging.WARNING,
            origin=self.origin,
            slot=slot,
            pid=self.procs[slot].pid,
            live=self.live.value,
        )
        return 0

    def _mark_dead(self, proc: BaseProcess) -> None:
        """Its live gauges leave the aggregate (its counters stay: they were counted)."""
        from prometheus_client import multiprocess

        if proc.pid is not None:
            multiprocess.mark_process_dead(proc.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]

    def _serve_metrics(self, port: int) -> None:
        from prometheus_client import CollectorRegistry, multiprocess, start_http_server

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.metrics_dir))  # type: ignore[no-untyped-call]
        start_http_server(port, METRICS_HOST, registry=registry)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.stopping = True
        for p in self.procs.values():
            if p.is_alive() and p.pid:
                os.kill(p.pid, signum)

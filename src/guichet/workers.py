"""Serving one origin with one or several worker processes (SO_REUSEPORT).

Workers share nothing in memory: policy through the database generation, quotas through
Redis (``GUICHET_REDIS_URL``), the journal chain through the database's row lock.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from guichet.settings import Settings, use_settings


def _serve_one(
    settings: Settings, origin: str, host: str, port: int, tls: bool, reuse: bool
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
    if origin == "portal":
        listener = Listener(origin, platform.portal_app(), bind(host, port, reuse_port=reuse), None)
    else:
        context = platform.ssl_context() if tls else None
        app = platform.gateway_app(Environment(origin))
        listener = Listener(origin, app, bind(host, port, reuse_port=reuse), context)
    run_loop(serve(platform, [listener]))


def serve_origin(
    settings: Settings, origin: str, host: str, port: int, workers: int, tls: bool
) -> None:
    if workers == 1:
        _serve_one(settings, origin, host, port, tls, reuse=False)
        return
    # Each worker knows how many share the quota, for its degraded share if Redis fails.
    settings = settings.model_copy(update={"workers": workers, "data_dir": Path(settings.data_dir)})
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_serve_one, args=(settings, origin, host, port, tls, True), daemon=False)
        for _ in range(workers)
    ]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: FrameType | None) -> None:
        for p in procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for p in procs:
        p.join()
    sys.exit(max((p.exitcode or 0) for p in procs))

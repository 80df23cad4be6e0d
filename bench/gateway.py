"""Benchmark: the sandbox SPI endpoint through the full chain vs a bare endpoint, same TLS.

Both servers run in their own process with the same server certificate, the same
client-certificate request (mutual TLS) and the same uvicorn protocol; the same load
generator drives each in turn with the same concurrency and keep-alive connections.
The gateway side does everything a real call does: certificate, IP, token (ES256,
certificate-bound), identity, rights, quota, SQLite read, field filtering, and a
durable journal record before the response.

    python -m bench.gateway [--seconds 10] [--concurrency 32]

Prints requests/s, p50 and p99 latency of both, their ratio, and (on Linux) each server
process's CPU time per request while it was measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.support.postgres import free_port

PERSONA = "3999999930262"


def _bare_server(port: int, pki_dir: str, body: bytes) -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from guichet.gateway.tls import build_server_ssl_context, make_server
    from guichet.platform import run_loop

    async def endpoint(_: Request) -> Response:
        return Response(body, media_type="application/json")

    app = Starlette(routes=[Route("/bare/{spi}/{annrev}", endpoint)])
    pki = Path(pki_dir)
    context = build_server_ssl_context(pki / "server.crt", pki / "server.key", [pki / "ca.crt"])
    server = make_server(app, host="127.0.0.1", port=port, ssl_context=context)
    run_loop(server.serve())


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_seconds: float | None = None  # the server process's, while measured


async def _drive(
    url: str,
    ctx: ssl.SSLContext,
    headers: dict[str, str],
    seconds: float,
    concurrency: int,
    pid: int | None = None,
) -> Run:
    """A lean HTTP/1.1 keep-alive load generator over mutual TLS (asyncio streams, uvloop):
    pre-encoded requests, responses read by Content-Length — far cheaper per request than
    the servers it measures. A fresh correlation id on every request."""
    parsed = httpx.URL(url)
    head = f"GET {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {parsed.host}:{parsed.port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    latencies: list[float] = []
    errors = 0

    async def connection(deadline: float) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port, ssl=ctx)
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                writer.write(f"{head}X-Correlation-ID: {uuid.uuid4()}\r\n\r\n".encode())
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                if b" 200 " not in status_line:
                    errors += 1
                latencies.append(time.perf_counter() - t0)
        finally:
            writer.close()

    await connection(time.perf_counter() + 0.5)  # warm-up: handshake, imports, caches
    latencies.clear()
    cpu_before = _cpu_seconds(pid)
    started = time.perf_counter()
    await asyncio.gather(*(connection(started + seconds) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu_after = _cpu_seconds(pid)
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    q = statistics.quantiles(latencies, n=100)
    return Run(len(latencies) / elapsed, q[49] * 1000, q[98] * 1000, len(latencies), errors, cpu)


def run_loop_result(main: Coroutine[Any, Any, Run]) -> Run:
    import uvloop

    return uvloop.run(main)


def _wait(url: str, ctx: ssl.SSLContext) -> None:
    for _ in range(300):
        try:
            httpx.get(url, verify=ctx, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _report(name: str, run: Run) -> None:
    cpu = f"   {1e6 * run.cpu_seconds / run.requests:.0f} µs CPU/request" if run.cpu_seconds else ""
    print(
        f"{name:<28} {run.rps:>8.0f} req/s   p50 {run.p50_ms:7.2f} ms   "
        f"p99 {run.p99_ms:7.2f} ms   {run.requests} requests, {run.errors} non-200{cpu}"
    )


def _cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU of a server process, all its threads (Linux ``/proc``; else None).

    Less at the mercy of whatever else runs on the machine than requests/s."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measure each side this long")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="guichet-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    env["GUICHET_DATA_DIR"] = str(data_dir)
    env["GUICHET_LOG_LEVEL"] = "WARNING"
    print(f"initialising {data_dir} …", flush=True)
    subprocess.run(
        [sys.executable, "-m", "guichet", "init", "--households", "2000"],
        env=env,
        check=True,
        capture_output=True,
    )
    creds = json.loads((data_dir / "demo" / "credentials.json").read_text())
    # The benchmark is about throughput, not quota: raise the demo's quota out of the way.
    from sqlalchemy import update

    from guichet.db import make_engine, make_sessionmaker, transaction
    from guichet.db.models import bump_generation
    from guichet.habilitation.models import Habilitation

    factory = make_sessionmaker(make_engine(f"sqlite:///{data_dir / 'guichet.db'}"))
    with transaction(factory) as s:
        s.execute(
            update(Habilitation).values(quotas={"impot_particulier": 10_000_000, "r2p": 10_000_000})
        )
        bump_generation(s)

    gw_port, bare_port = free_port(), free_port()
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "guichet",
            "serve",
            "gateway",
            "--environment",
            "sandbox",
            "--port",
            str(gw_port),
        ],
        env=env,
    )
    ctx = ssl.create_default_context(cafile=creds["ca_file"])
    ctx.load_cert_chain(creds["cert_file"], creds["key_file"])
    try:
        gw = f"https://127.0.0.1:{gw_port}"
        _wait(gw + "/healthz", ctx)
        token = httpx.post(
            gw + "/token",
            verify=ctx,
            data={"grant_type": "client_credentials"},
            auth=(creds["client_id"], creds["client_secret"]),
        ).json()["access_token"]
        year = time.gmtime().tm_year - 1
        path = f"/impotparticulier/1.0/spi/{PERSONA}/situations/ir/assiettes/annrev/{year}"
        headers = {"Authorization": f"Bearer {token}"}
        sample = httpx.get(
            gw + path, verify=ctx, headers={**headers, "X-Correlation-ID": str(uuid.uuid4())}
        )
        assert sample.status_code == 200, sample.text
        bare = multiprocessing.get_context("spawn").Process(
            target=_bare_server,
            args=(bare_port, str(data_dir / "pki"), sample.content),
            daemon=True,
        )
        bare.start()
        bare_url = f"https://127.0.0.1:{bare_port}/bare/{PERSONA}/{year}"
        _wait(bare_url, ctx)

        def drive(url: str, hdrs: dict[str, str], pid: int | None) -> Run:
            return run_loop_result(_drive(url, ctx, hdrs, args.seconds, args.concurrency, pid))

        print(
            f"\n{args.concurrency} concurrent HTTP/1.1 keep-alive "
            f"connections, {args.seconds:.0f} s per side, mutual TLS, one uvicorn worker each\n"
        )
        b = drive(bare_url, {}, bare.pid)
        _report("bare Starlette endpoint", b)
        g = drive(gw + path, headers, gateway.pid)
        _report("gateway, full chain", g)
        print(
            f"\nthroughput ratio gateway/bare: {g.rps / b.rps:.2f}   "
            f"p50 ratio: {g.p50_ms / max(b.p50_ms, 0.001):.2f}   (aim: throughput ratio ≥ 0.50)"
        )
        bare.terminate()
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(30)
    verify = subprocess.run(
        [sys.executable, "-m", "guichet", "journal", "verify"],
        env=env,
        capture_output=True,
        text=True,
    )
    print("journal verify:", "ok" if verify.returncode == 0 else verify.stdout + verify.stderr)


if __name__ == "__main__":
    main()

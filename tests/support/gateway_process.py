"""``guichet serve gateway`` run as an operator runs it, on loopback, for functional tests.

It also tells which worker process holds the server side of a given client connection
(Linux ``/proc``), so that a test can prove that several workers served its calls.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.postgres import free_port

LISTEN = "0A"
ESTABLISHED = "01"


def guichet_env(data_dir: Path, db_url: str | None, **extra: str) -> dict[str, str]:
    """The process environment for ``guichet`` commands on this data directory and database.

    Any ``GUICHET_*`` variable of the test run itself is dropped, so that only what the
    test sets applies.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUICHET_")}
    env["GUICHET_DATA_DIR"] = str(data_dir)
    if db_url is not None and not db_url.startswith("sqlite"):
        env["GUICHET_DATABASE_URL"] = db_url
    env.update(extra)
    return env


def run_guichet(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """One ``guichet`` command; fails the test with its output if it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "guichet", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"guichet {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def _hex_address(value: str) -> tuple[str, int]:
    """``0100007F:1F90`` (``/proc/net/tcp``, host byte order) → ``("127.0.0.1", 8080)``."""
    host, port = value.split(":")
    return socket.inet_ntoa(struct.pack("<I", int(host, 16))), int(port, 16)


def _tcp_sockets() -> list[tuple[tuple[str, int], tuple[str, int], str, int]]:
    """IPv4 TCP sockets of this network namespace: (local, remote, state, inode)."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        rows.append((_hex_address(fields[1]), _hex_address(fields[2]), fields[3], int(fields[9])))
    return rows


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces; the parent pid follows its ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def client_port(response: httpx.Response) -> int:
    """The local port of the connection that carried ``response`` (still open)."""
    stream = response.extensions["network_stream"]
    return int(stream.get_extra_info("client_addr")[1])


@dataclass
class GatewayProcess:
    """``guichet serve gateway --environment sandbox --port P [--workers N] [--no-tls]``.

    ``start()`` returns once every worker answers ``/healthz``; ``stop()`` sends SIGTERM
    (the clean shutdown an operator's supervisor does) and kills after a timeout.
    """

    env: dict[str, str]
    log_file: Path
    workers: int = 1
    tls: bool = True
    ca_file: Path | None = None
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    # The proxy channel (``--socket``) instead of a TCP port: plain HTTP, no peer address.
    unix_socket: Path | None = None
    environment: str = "sandbox"
    extra_args: tuple[str, ...] = ()  # e.g. ("--metrics-port", "9100")

    def __post_init__(self) -> None:
        if self.unix_socket is not None:
            self.tls = False
        else:
            self.port = self.port or free_port()

    @property
    def url(self) -> str:
        if self.unix_socket is not None:
            return "http://gateway"
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def start(self, timeout: float = 60) -> GatewayProcess:
        cmd = [
            sys.executable,
            "-m",
            "guichet",
            "serve",
            "gateway",
            "--environment",
            self.environment,
            "--workers",
            str(self.workers),
        ]
        if self.unix_socket is not None:
            cmd += ["--socket", str(self.unix_socket)]
        else:
            cmd += ["--port", str(self.port)]
        if not self.tls and self.unix_socket is None:
            cmd.append("--no-tls")
        cmd += self.extra_args
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            self.wait_all_workers(lambda r: r.status_code == 200, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in self.worker_pids():
                    os.kill(pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def client(
        self,
        cert: tuple[str, str] | None = None,
        local_address: str | None = None,
        timeout: float = 30,
    ) -> httpx.Client:
        """A new client (its own connection) towards this gateway."""
        verify: object = False
        if self.tls:
            import ssl

            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            if cert:
                context.load_cert_chain(cert[0], cert[1])
            verify = context
        if self.unix_socket is not None:
            transport = httpx.HTTPTransport(uds=str(self.unix_socket))
        else:
            transport = httpx.HTTPTransport(verify=verify, local_address=local_address)  # type: ignore[arg-type]
        return httpx.Client(base_url=self.url, transport=transport, timeout=timeout)

    def worker_pids(self) -> set[int]:
        """The processes listening on the port (the main process itself with one worker)."""
        if self.proc is None:
            return set()
        if self.unix_socket is not None:
            # One socket bound by the main process, inherited by the workers it spawns.
            if self.workers == 1:
                return {self.proc.pid}
            return {pid for pid in _children(self.proc.pid) if _socket_inodes(pid)}
        listening = {
            inode
            for local, _, state, inode in _tcp_sockets()
            if state == LISTEN and local[1] == self.port
        }
        candidates = [self.proc.pid, *_children(self.proc.pid)]
        return {pid for pid in candidates if _socket_inodes(pid) & listening}

    def serving_pid(self, response: httpx.Response) -> int:
        """The worker holding the server side of the (still open) connection of ``response``."""
        port = client_port(response)
        inodes = {
            inode
            for local, remote, state, inode in _tcp_sockets()
            if local[1] == self.port and remote[1] == port and state == ESTABLISHED
        }
        for pid in self.worker_pids():
            if _socket_inodes(pid) & inodes:
                return pid
        raise AssertionError(f"no worker holds the connection from port {port}")

    def wait_all_workers(
        self, ready: Callable[[httpx.Response], bool], timeout: float = 30, path: str = "/healthz"
    ) -> None:
        """Fresh connections to ``path`` until every worker has answered ``ready(response)``.

        ``ready`` is a predicate on the response; SO_REUSEPORT spreads new connections over
        the workers, so each one is reached after a few attempts.
        """
        deadline = time.monotonic() + timeout
        satisfied: set[int] = set()
        last = ""
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited:\n{self.log()}")
            pids = self.worker_pids()
            if len(pids) == self.workers and pids <= satisfied:
                return
            try:
                with self.client(timeout=5) as c:
                    r = c.get(path)
                    last = r.text
                    if ready(r):
                        if self.unix_socket is not None:
                            # No port to tell the workers apart: one answer for all.
                            satisfied |= pids
                            continue
                        satisfied.add(self.serving_pid(r))
                        continue
            except (httpx.HTTPError, AssertionError, KeyError, ValueError) as exc:
                last = repr(exc)
            time.sleep(0.05)
        raise RuntimeError(f"workers not all ready ({last}):\n{self.log()}")

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["GatewayProcess", "client_port", "free_port", "guichet_env", "run_guichet"]

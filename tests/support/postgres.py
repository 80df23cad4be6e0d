"""A throwaway PostgreSQL server from Debian's packages, on loopback, in a temp directory."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    root = Path("/usr/lib/postgresql")
    for version in sorted(root.iterdir(), reverse=True) if root.exists() else []:
        candidate = version / "bin" / name
        if candidate.exists():
            return str(candidate)
    raise RuntimeError(f"PostgreSQL binary {name!r} not found: run `make test-deps`")


class PostgresServer:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="guichet-pg-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True)

    def start(self) -> PostgresServer:
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")
        self._run(
            _pg_bin("initdb"),
            "-D",
            str(self.dir / "data"),
            "-U",
            "guichet",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        return self.resume()

    def halt(self) -> None:
        """Stop the server (SIGINT: PostgreSQL's fast shutdown, clients disconnected),
        keeping its data: ``resume()`` starts it again on the same port (tests/faults)."""
        if self.proc is not None:
            pid_file = self.dir / "data" / "postmaster.pid"
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
            except (OSError, ValueError, IndexError):
                self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def resume(self) -> PostgresServer:
        """Start the server process on the existing data directory; returns once it accepts
        connections."""
        cmd = [
            _pg_bin("postgres"),
            "-D",
            str(self.dir / "data"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-k",
            str(self.dir),
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("PostgreSQL did not start")
        time.sleep(0.3)
        return self

    def create_database(self, name: str) -> str:
        import psycopg

        for _ in range(50):
            try:
                with psycopg.connect(self.url("postgres", driver=False), autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
                break
            except psycopg.OperationalError:
                time.sleep(0.1)
        return self.url(name)

    def url(self, database: str, driver: bool = True) -> str:
        scheme = "postgresql+psycopg" if driver else "postgresql"
        return f"{scheme}://guichet@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

"""A throwaway nginx (Debian's) on loopback, in a temp directory, terminating mutual TLS in
front of an upstream HTTP server — on TCP or on a Unix socket, the proxy channel guichet
believes (issue 12) — and forwarding the client certificate (RFC 9440 style)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from guichet.connections import ConnectionLimits
from guichet.settings import Settings
from tests.support.postgres import free_port

NGINX = "/usr/sbin/nginx"
DEFAULT_MAX_BODY: int = Settings.model_fields["max_body_bytes"].default

CONFIG_TEMPLATE = """\
{user}worker_processes 1;
error_log {dir}/error.log info;
pid {dir}/nginx.pid;

events {{
    worker_connections 256;
}}

http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

{limits}

    upstream guichet_upstream {{
        server {upstream};
        keepalive 16;
    }}

    server {{
        listen {host}:{port} ssl;
        ssl_certificate {server_cert};
        ssl_certificate_key {server_key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_verify_client {verify_client};
{server_directives}
        location / {{
{proxy}
        }}
{certificate_errors}
    }}
}}
"""

# The same resource limits as guichet's own origins (``guichet.connections``, the
# ``GUICHET_*`` defaults; docs/security.md): nginx applies them per client before anything
# reaches guichet, which exempts nginx's address (a trusted proxy) from its per-client cap.
# Before nginx 1.25.3, ``client_header_timeout`` also bounds the TLS handshake.
# ``limit_conn`` counts the connections with a request in progress.
LIMIT_DIRECTIVES = """\
client_header_timeout {header_timeout}s;
client_body_timeout {body_timeout}s;
keepalive_timeout {keepalive_timeout}s;
send_timeout 30s;
client_max_body_size {max_body_bytes};
large_client_header_buffers 4 16k;
limit_conn_zone $binary_remote_addr zone=per_client:10m;
limit_conn per_client {per_client};
limit_conn_status 429;
"""

# The headers nginx sets replace any the caller sent under the same names; X-Forwarded-For
# is set to the peer nginx saw ($remote_addr), never extended from what the caller sent.
PROXY_DIRECTIVES = """\
proxy_pass http://guichet_upstream;
proxy_http_version 1.1;
proxy_set_header Connection "";
proxy_set_header Host $http_host;
proxy_set_header {client_cert_header} $ssl_client_escaped_cert;
proxy_set_header X-Forwarded-For $remote_addr;
proxy_set_header X-Forwarded-Proto $scheme;
"""

# Even with ``optional_no_ca`` nginx answers 400 itself (internally 495) to a certificate
# outside its validity dates. Sending that request on to the gateway all the same lets
# the control chain refuse it with a journaled 401 certificate_expired, as it does when
# connected directly; method, query and body are kept.
CERTIFICATE_ERRORS = """\
error_page 495 = @certificate_error;
location @certificate_error {{
{proxy}
}}
"""


def _seconds(value: float) -> int:
    """nginx times are whole seconds here (at least one)."""
    return max(1, round(value))


def _indent(directives: str, spaces: int) -> str:
    """One directive a line, re-indented (the caller's own indentation dropped)."""
    lines = (line.strip() for line in directives.splitlines())
    return "\n".join(" " * spaces + line for line in lines if line)


def _indent_block(text: str, spaces: int) -> str:
    """Shift a block right, keeping its inner indentation."""
    return "\n".join(" " * spaces + line for line in text.splitlines() if line.strip())


class NginxServer:
    """``NginxServer(upstream_port, server_cert, server_key).start()``, then ``.port``, ``.stop()``.

    ``verify_client`` is nginx's ``ssl_verify_client`` (``optional_no_ca`` hands every
    certificate to the upstream, which does the checking; ``pass_certificate_errors``
    forwards even those nginx finds expired). ``server_directives`` go into the
    ``server`` block (e.g. ``ssl_client_certificate …;``), ``location_directives`` next
    to the ``proxy_pass``; one directive a line. ``limits`` and ``max_body_bytes``: the
    resource limits, guichet's defaults unless given (``LIMIT_DIRECTIVES``).
    ``upstream_socket``: the upstream's Unix socket instead of ``upstream_port``; ``user``:
    whom the worker processes run as (nginx's ``user``, when started as root).
    """

    def __init__(
        self,
        upstream_port: int | None,
        server_cert: Path,
        server_key: Path,
        *,
        upstream_host: str = "127.0.0.1",
        host: str = "127.0.0.1",
        verify_client: str = "optional_no_ca",
        client_cert_header: str = "Client-Cert",
        pass_certificate_errors: bool = True,
        server_directives: str = "",
        location_directives: str = "",
        limits: ConnectionLimits | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        upstream_socket: Path | None = None,
        user: str | None = None,
    ) -> None:
        limits = limits or ConnectionLimits()
        if not Path(NGINX).exists():
            raise RuntimeError(f"{NGINX} not found: install Debian's nginx-light (make test-deps)")
        self.host = host
        self.port = free_port(host)
        proxy = PROXY_DIRECTIVES.format(client_cert_header=client_cert_header) + location_directives
        self._settings = {
            "host": host,
            "port": self.port,
            "upstream": f"unix:{upstream_socket}"
            if upstream_socket is not None
            else f"{upstream_host}:{upstream_port}",
            "user": f"user {user};\n" if user else "",
            "server_cert": Path(server_cert).resolve(),
            "server_key": Path(server_key).resolve(),
            "verify_client": verify_client,
            "limits": _indent(
                LIMIT_DIRECTIVES.format(
                    header_timeout=_seconds(limits.header_timeout),
                    body_timeout=_seconds(limits.body_timeout),
                    keepalive_timeout=_seconds(limits.keepalive_timeout),
                    max_body_bytes=max_body_bytes,
                    per_client=limits.per_client,
                ),
                4,
            ),
            "server_directives": _indent(server_directives, 8),
            "proxy": _indent(proxy, 12),
            "certificate_errors": _indent_block(
                CERTIFICATE_ERRORS.format(proxy=_indent(proxy, 4))
                if pass_certificate_errors
                else "",
                8,
            ),
        }
        self.dir: Path | None = None
        self.config = ""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def log(self) -> str:
        path = self.dir / "error.log" if self.dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def start(self) -> NginxServer:
        self.dir = Path(tempfile.mkdtemp(prefix="guichet-nginx-"))
        # Worker processes drop root for nobody; they must reach the temp paths.
        self.dir.chmod(0o755)
        self.config = CONFIG_TEMPLATE.format(dir=self.dir, **self._settings)
        conf = self.dir / "nginx.conf"
        conf.write_text(self.config)
        cmd = [NGINX, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")]
        check = subprocess.run([*cmd, "-t"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            self.stop()
            raise RuntimeError(f"nginx configuration refused:\n{check.stderr}\n{self.config}")
        self.proc = subprocess.Popen(
            [*cmd, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                stderr = self.proc.stderr.read().decode() if self.proc.stderr else ""
                log = self.log()
                self.stop()
                raise RuntimeError(f"nginx exited at start:\n{stderr}\n{log}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        log = self.log()
        self.stop()
        raise RuntimeError(f"nginx did not start listening:\n{log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish requests, then exit
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["NginxServer", "free_port"]

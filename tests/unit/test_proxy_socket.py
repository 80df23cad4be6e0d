"""``platform.bind_unix``: the proxy channel's socket, 0660 in the proxy's group (issue 12)."""

from __future__ import annotations

import grp
import socket
import stat
from pathlib import Path

import pytest

from guichet.platform import bind_unix


def test_the_socket_is_the_owner_s_and_the_proxy_group_s_only(tmp_path: Path) -> None:
    path = tmp_path / "run" / "gateway.sock"
    group = grp.getgrgid(Path("/").stat().st_gid).gr_name  # a group that exists here

    sock = bind_unix(path, group)
    try:
        info = path.stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o660
        assert info.st_gid == grp.getgrnam(group).gr_gid
        assert sock.family == socket.AF_UNIX
    finally:
        sock.close()


def test_a_stale_socket_is_replaced_another_file_is_not(tmp_path: Path) -> None:
    path = tmp_path / "gateway.sock"
    bind_unix(path).close()  # left behind by a previous run
    bind_unix(path).close()

    other = tmp_path / "not-a-socket"
    other.write_text("données")
    with pytest.raises(OSError, match="n'est pas un socket"):
        bind_unix(other)
    assert other.read_text() == "données"


def test_an_unknown_group_is_named(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="GUICHET_PROXY_SOCKET_GROUP"):
        bind_unix(tmp_path / "gateway.sock", "pas-un-groupe-guichet")

"""A real PostgreSQL server for tests: initdb into a temporary folder, started on a free loopback port, stopped after.

Binaries come from PATH or Debian's /usr/lib/postgresql/N/bin; when missing and we are root with apt-get, the
`postgresql` package is installed first (as a user would; tests/system_tools.py), else the test is skipped. PostgreSQL refuses to run as root, so as root the
server runs as the package's `postgres` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from system_tools import found_or_skip


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return Path(dirs[-1]) if dirs else None


def find_binaries() -> Path:
    """The folder holding initdb/pg_ctl, installing Debian's postgresql package when missing; else the test skips."""
    return Path(found_or_skip(lambda: str(_bin_dir() or "") or None, "postgresql", "PostgreSQL (initdb, pg_ctl)"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a `postgresql://` URL of a fresh server (trust auth on 127.0.0.1); the folder is removed after."""
    bins = find_binaries()
    folder = Path(tempfile.mkdtemp(prefix="edgedistill-pg-"))
    data, port = folder / "data", _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    run = lambda *cmd: subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True, timeout=120)
    try:
        run(str(bins / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        opts = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} -c fsync=off"
        run(str(bins / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(folder / "server.log"), "-w", "-t", "60",
            "start")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            subprocess.run([*as_user, str(bins / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           check=False, capture_output=True, timeout=120)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

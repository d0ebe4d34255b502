"""System programs a test needs (Chromium, qemu-user, PostgreSQL): found on PATH, else installed from the Debian
package when we are root with apt-get, else the test is skipped with the reason.

Hand-written because no library installs a system package: `apt-get update` first (a fresh container has no
package lists, and stale ones name files the mirror no longer has), then `apt-get install`, both under one
bound (INSTALL_SECONDS in all), so a hanging mirror costs the suite three minutes and a skip, not a 600–900 s
timeout error. A failed install is remembered for the session: the next test that needs it skips at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from functools import cache

import pytest

INSTALL_SECONDS = 180  # apt-get update + install together


@cache
def apt_install(package: str, seconds: float = INSTALL_SECONDS) -> str | None:
    """Install a Debian package (update first); None when installed, else why not (one line)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "this user cannot apt-get install (not root, or no apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    deadline = time.monotonic() + seconds
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
        left = deadline - time.monotonic()
        if left <= 0:
            return f"`{' '.join(cmd[:2])}` had no time left of the {seconds:.0f} s bound"
        try:
            done = subprocess.run(cmd, env=env, check=False, capture_output=True, text=True, timeout=left)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(cmd[:2])}` did not finish within the {seconds:.0f} s bound (package mirror unreachable?)"
        if done.returncode != 0:
            tail = " ".join((done.stderr or done.stdout).split())[-300:]
            return f"`{' '.join(cmd[:2])}` failed (exit {done.returncode}): {tail}"
    return None


def found_or_skip(find: Callable[[], str | None], package: str, what: str) -> str:
    """find() when it finds something; else install `package` and find() again; else skip naming the reason."""
    found = find()
    if found:
        return found
    why = apt_install(package)
    found = find()
    if not found:
        pytest.skip(f"{what} is not installed and could not be installed from Debian's {package}: "
                    f"{why or 'installed, but still not found'}")
    return found


def tool_or_skip(binary: str, package: str, *aliases: str) -> str:
    """The path of `binary` (or an alias), installing `package` when missing; else the test is skipped."""
    return found_or_skip(lambda: next(filter(None, map(shutil.which, (binary, *aliases))), None), package, binary)

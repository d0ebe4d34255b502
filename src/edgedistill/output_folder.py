"""Can we write there? Asked of the filesystem itself, before any work, so a bad output path costs nothing.

`os.access` is not enough: root passes it on /proc and on read-only folders, so a probe folder is
created and removed in the nearest existing parent instead.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MIN_FREE_MB = 1  # a full disk is refused up front; a tight one is caught at the write (exit 1)


def _nearest_existing(path: Path) -> Path:
    p = path.expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _dangling_link(p: Path) -> str | None:
    """A symbolic link on the way whose target is gone: mkdir would fail on it with FileExistsError."""
    for q in (p, *p.parents):
        if q.is_symlink() and not q.exists():
            return f"{q} is a symbolic link to {os.readlink(q)}, which does not exist"
    return None


def folder_problem(path: str | Path, min_free_mb: float = 0) -> str | None:
    """Why folders cannot be created at `path` (a file in the way, no permission, read-only, full); None: fine."""
    try:
        p = Path(path).expanduser().absolute()
        dangling = _dangling_link(p)
        if dangling:
            return dangling
        existing = _nearest_existing(p)
        if not existing.is_dir():
            return f"{existing} is a file, not a folder"
        probe = tempfile.mkdtemp(prefix=".edgedistill-probe-", dir=existing)
        os.rmdir(probe)
        free_mb = shutil.disk_usage(existing).free / 1e6
    except OSError as e:
        return f"cannot create folders in {_nearest_existing(Path(path))} ({e.strerror or e})"
    except ValueError as e:  # a NUL byte in the name
        return str(e)
    if free_mb < min_free_mb:
        return f"only {free_mb:.1f} MB free on {existing} (at least {min_free_mb} MB needed)"
    return None


def file_problem(path: str | Path) -> str | None:
    """Why `path` cannot be written as a file; None: fine (nothing is created)."""
    p = Path(path).expanduser()
    try:
        if p.is_dir():
            return f"{p} is a folder"
        if p.exists() and not os.access(p, os.W_OK):
            return f"{p} is not writable"
    except OSError as e:
        return f"{p}: {e.strerror or e}"
    return folder_problem(p.parent)


DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


def disk_error_line(e: OSError) -> str | None:
    """One line for an OSError a user fixes on their disk (full, quota, read-only, permissions); None: a bug."""
    if e.errno not in DISK_ERRNOS:
        return None
    where = f": {e.filename}" if e.filename else ""
    return f"{e.strerror or os.strerror(e.errno)}{where} (errno {e.errno}); files written before are intact " \
           "(checkpoints are written atomically): free space or fix permissions, then rerun with --resume"


def check_output_dir(path: str | Path, key: str = "output.dir") -> None:
    """Refuse, before any work, an output folder that cannot be created or written, or a full disk."""
    from .errors import UserError

    problem = folder_problem(path, MIN_FREE_MB)
    if problem:
        raise UserError(f"cannot write run folders under {path}: {problem}; allowed: a writable folder with "
                        f"at least {MIN_FREE_MB} MB free", key=key)


@contextmanager
def removed_on_user_error(folder: Path, fresh: bool) -> Iterator[None]:
    """A folder this command just created is removed when a late check refuses the input (exit 2), so a refused
    compare or search leaves nothing behind; a resumed folder is never touched."""
    from .errors import UserError

    try:
        yield
    except UserError:
        if fresh:
            shutil.rmtree(folder, ignore_errors=True)
        raise

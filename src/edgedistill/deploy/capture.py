"""Catch what C and C++ libraries write to fds 1 and 2, which Python's redirect_stdout cannot reach.

torch.onnx dumps its graph there on failure (export.py reads it for the module name); runtimes log delegate
notes and thread pools there (the deploy matrix keeps them off the console). Only the standard library is
imported, so a runtime's memory probe can use it without loading torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def captured_output(sink: list[str]) -> Iterator[None]:
    """Collect what C++ and Python write to fds 1 and 2 (the exporter dumps its graph there on failure)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+") as f:
        try:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            ctypes.CDLL(None).fflush(None)  # lines a library buffered in C stdio land here, not at exit
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            f.seek(0)
            sink.append(f.read())

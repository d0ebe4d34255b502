"""User-facing errors: the CLI turns these into a one-line message and exit code 2."""

from __future__ import annotations


SHOWN = 80  # characters of a value quoted back in a message


def shorten(text: str, n: int = SHOWN) -> str:
    """`text` cut to its first and last n/2 characters with its length noted, so a huge value never floods a
    message while a long path keeps its file name."""
    return text if len(text) <= n else f"{text[:n // 2]}…{text[-(n // 2):]} ({len(text):,} characters)"


class UserError(Exception):
    """Bad input from the user (recipe, file, name): shown without a traceback."""

    def __init__(self, message: str, key: str | None = None):
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class TrainingError(Exception):
    """Training cannot go on (a non-finite loss); the last good checkpoint is left intact.

    Defined here, not in engine/, so the CLI can catch it without importing torch (predict stays torch-free).
    """

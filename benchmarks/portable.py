"""Committed benchmark results carry no machine paths: the repository's absolute path becomes relative."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def portable(text: str) -> str:
    """`text` with this checkout's absolute path removed (and its parent written as '..'), for committed files."""
    return text.replace(f"{REPO}/", "").replace(str(REPO), ".").replace(f"{REPO.parent}/", "../")

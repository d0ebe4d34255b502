"""Name → object registries, so recipes can name methods, models and datasets and `list` can show them."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import UserError

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    name: str
    obj: T
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A named table of constructors; lookups of unknown names suggest close matches."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = Entry(name, obj, meta)
            return obj

        return deco

    def get(self, name: str, key: str | None = None) -> T:
        return self.entry(name, key).obj

    def entry(self, name: str, key: str | None = None) -> Entry[T]:
        if name not in self._entries:
            raise UserError(unknown_name_message(self.kind, name, list(self._entries)), key=key)
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))


def unknown_name_message(kind: str, name: str, known: list[str], limit: int = 20) -> str:
    """One message for every 'no such thing' error: the bad name, close matches, and what exists."""
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    msg = f"unknown {kind} {name!r}"
    if close:
        msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
    elif len(known) <= limit:
        msg += f"; allowed: {', '.join(sorted(known))}"
    else:
        msg += f" ({len(known)} known; see `edgedistill list`)"
    return msg

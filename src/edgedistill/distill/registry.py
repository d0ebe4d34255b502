"""The method registry lives apart from the methods so each method file can register itself."""

from __future__ import annotations

from ..registry import Registry

METHODS: Registry = Registry("method")

"""Distillation: the Distiller and its methods, one file each, registered by name."""

from __future__ import annotations

import importlib
import pkgutil

from .base import Distiller, Outputs, Term
from .registry import METHODS

# A method is a new file in this package: importing every module registers them all.
for _m in pkgutil.iter_modules(__path__):
    if _m.name not in ("base", "registry", "schemes", "terms"):
        importlib.import_module(f"{__name__}.{_m.name}")

from .schemes import SCHEMES, Scheme, SchemeJob, SchemeResult
from .terms import build_terms, terms_need_teacher

__all__ = ["METHODS", "SCHEMES", "Distiller", "Outputs", "Scheme", "SchemeJob", "SchemeResult", "Term",
           "build_terms", "terms_need_teacher"]

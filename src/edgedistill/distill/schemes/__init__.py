"""Distillation schemes: who teaches whom. offline (frozen teacher), online (mutual learning), born_again.

A scheme decides which modules to train and in what order; the pipeline gives it a `SchemeJob` whose
`train` runs one engine stage and saves the named models, so schemes never touch the engine or the run folder.
"""

from . import born_again, offline, online  # noqa: F401  (register the schemes)
from .base import SCHEMES, Scheme, SchemeJob, SchemeResult

__all__ = ["SCHEMES", "Scheme", "SchemeJob", "SchemeResult"]

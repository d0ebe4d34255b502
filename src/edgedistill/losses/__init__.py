"""Pure loss functions, one family a file; nothing here knows about training."""

from .kd import kd_loss

__all__ = ["kd_loss"]

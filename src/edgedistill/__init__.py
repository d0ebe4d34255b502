"""edgedistill: distill a large image model into a small one, then compress and measure it."""

__version__ = "0.1.0"

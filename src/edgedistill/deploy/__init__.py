"""Deployment-side measures: what a model costs to store and run on the target CPU."""

from .profile import count_flops, count_params, measure_latency, peak_memory_mb, profile_model, weights_size_bytes

__all__ = ["count_flops", "count_params", "measure_latency", "peak_memory_mb", "profile_model", "weights_size_bytes"]

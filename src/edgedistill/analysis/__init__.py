"""Analyses above the spine: comparisons of arms over repeated runs (statistics, verdicts)."""

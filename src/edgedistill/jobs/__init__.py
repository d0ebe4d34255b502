"""Many runs scheduled through one Optuna study (journal file embedded, PostgreSQL for several machines)."""

from .runs import Job, open_study, run_workers, schedule

__all__ = ["Job", "open_study", "run_workers", "schedule"]

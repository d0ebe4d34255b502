"""Hardware-aware student search: spaces, cost-first measurement, flash distillation, the Optuna study, proxy trust."""

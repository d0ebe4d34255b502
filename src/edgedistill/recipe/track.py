"""The `track:` recipe section: which experiment trackers watch a run (TensorBoard, MLflow, W&B offline)."""

from __future__ import annotations

from pydantic import Field

from .base import Section


class TrackConfig(Section):
    tensorboard: bool = Field(True, description="TensorBoard event files in RUN/tensorboard (open: "
                              "tensorboard --logdir OUTPUT_DIR); tensorboard is a core dependency")
    mlflow: bool = Field(False, description="log to MLflow (needs: pip install mlflow)")
    mlflow_uri: str | None = Field(None, description="MLflow tracking URI (http://host:port, "
                                   "sqlite:///FILE); default: a local store OUTPUT_DIR/mlruns "
                                   "(mlflow.db + artifacts/)")
    wandb: bool = Field(False, description="log to Weights & Biases in offline mode (WANDB_MODE=offline), "
                        "files in RUN/wandb; upload later with wandb sync (needs: pip install wandb)")
    project: str = Field("edgedistill", min_length=1, description="MLflow experiment and W&B project name")

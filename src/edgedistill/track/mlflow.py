"""MLflow: a local store OUTPUT_DIR/mlruns (SQLite + artifact folder) by default, or any tracking URI.

MLflow 3 refuses plain-folder (`file:`) stores unless MLFLOW_ALLOW_FILE_STORE is set, so the local default is
its recommended SQLite backend; `mlflow ui --backend-store-uri sqlite:///OUTPUT_DIR/mlruns/mlflow.db`
opens it.
MlflowClient (not the fluent API) keeps no process-wide active run, so a run inside a Python program is safe.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
from pathlib import Path
from typing import Any

from .base import TRACKERS, Scalar

MAX_PARAM = 6000  # MLflow's limit on one parameter value
CONNECT_TIMEOUT_S = 3.0


def check_server(uri: str) -> None:
    """An http(s) tracking URI must accept a connection: MLflow's client would retry with back-off for
    minutes (MLFLOW_HTTP_REQUEST_MAX_RETRIES, default 7) before the run could even say why it waits."""
    u = urllib.parse.urlparse(uri)
    if u.scheme not in ("http", "https") or not u.hostname:
        return
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        socket.create_connection((u.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise OSError(f"no server accepts connections at {u.hostname}:{port} within {CONNECT_TIMEOUT_S:.0f} s "
                      f"({e})") from None


class MLflowTracker:
    def __init__(self, cfg: Any, run_dir: Path, output_dir: Path):
        import mlflow
        from mlflow.entities import Metric, Param, RunStatus

        self._Metric, self._Param, self._status = Metric, Param, RunStatus
        store = (output_dir / "mlruns").resolve()
        if cfg.mlflow_uri:
            check_server(cfg.mlflow_uri)
            uri, artifacts = cfg.mlflow_uri, None  # the server (or store) decides where artifacts go
        else:
            store.mkdir(parents=True, exist_ok=True)
            uri, artifacts = f"sqlite:///{store / 'mlflow.db'}", (store / "artifacts").as_uri()
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        exp = self.client.get_experiment_by_name(cfg.project)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(cfg.project,
                                                                             artifact_location=artifacts)
        run = self.client.create_run(exp_id, run_name=run_dir.name, tags={"run_dir": str(run_dir)})
        self.run_id = run.info.run_id

    def params(self, params: dict[str, Scalar]) -> None:
        items = [self._Param(k, json.dumps(v) if v is None else str(v)[:MAX_PARAM])
                 for k, v in params.items()]
        for i in range(0, len(items), 100):  # log_batch takes at most 100 params a call
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def metrics(self, values: dict[str, float], step: int, stage: str | None = None) -> None:
        now = int(time.time() * 1000)
        items = [self._Metric(k, v, now, step) for k, v in values.items()]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.run_id, metrics=items[i:i + 1000])

    def table(self, name: str, rows: list[dict[str, Scalar]]) -> None:
        self.client.log_dict(self.run_id, rows, f"{name}.json")

    def artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self, failed: bool) -> None:
        status = self._status.to_string(self._status.FAILED if failed else self._status.FINISHED)
        self.client.set_terminated(self.run_id, status)


TRACKERS.register("mlflow", module="mlflow", pip="pip install mlflow")(MLflowTracker)

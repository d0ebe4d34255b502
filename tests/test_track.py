"""Experiment trackers, read back with each tool's own reader: TensorBoard's EventAccumulator, MLflow's client
(against its local store and against a real `mlflow server` on a loopback port), and W&B's offline run file."""

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from edgedistill.errors import UserError
from edgedistill.pipeline import run
from edgedistill.recipe import load_recipe
from edgedistill.track import Trackers, flatten

pytestmark = pytest.mark.slow
TERMS = ("loss", "ce", "kd", "lr", "images_per_s", "val_top1")
TINY = ["data.image_size=16", "data.max_train_samples=128", "data.max_val_samples=64", "teacher.model=cifar:resnet8",
        "teacher.epochs=1", "train.epochs=2", "train.batch_size=32", "eval.latency_runs=2", "eval.warmup_runs=0",
        "data.workers=0", "compress.latency_runs=2", "compress.warmup_runs=0", "compress.parity_images=16"]


def quiet() -> Console:
    return Console(file=open(os.devnull, "w"))


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One tiny digits run with all three trackers on and one compress stage (finetune, then export)."""
    base = tmp_path_factory.mktemp("track")
    recipe = load_recipe(None, [*TINY, f"output.dir={base / 'runs'}", "track.mlflow=true", "track.wandb=true",
                                "compress.stages=[{name: finetune, epochs: 1}, {name: export}]"])
    return SimpleNamespace(base=base, run=run(recipe, quiet()), recipe=recipe)


def test_tensorboard_events_hold_every_term_per_epoch_and_stage(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = list((tracked.run / "tensorboard").glob("events.out.tfevents.*"))
    assert files, "tensorboard is on by default"
    acc = EventAccumulator(str(tracked.run / "tensorboard"), size_guidance={"scalars": 0, "images": 0}).Reload()
    tags = set(acc.Tags()["scalars"])
    for stage, epochs in (("teacher", 1), ("student_alone", 2), ("student", 2), ("compress/1-finetune", 1)):
        for term in TERMS:
            if stage in ("teacher", "student_alone") and term == "kd":
                continue  # trained on labels alone
            assert [e.step for e in acc.Scalars(f"{stage}/{term}")] == list(range(1, epochs + 1)), (stage, term)
    history = [json.loads(x) for x in (tracked.run / "student" / "metrics.jsonl").read_text().splitlines()]
    assert [e.value for e in acc.Scalars("student/kd")] == pytest.approx([h["kd"] for h in history])
    metrics = json.loads((tracked.run / "metrics.json").read_text())
    assert acc.Scalars("final/student/top1")[0].value == pytest.approx(metrics["models"]["student"]["top1"])
    assert "compress_table/1-finetune/top1" in tags and "compress_table/2-export/params" in tags
    assert {"training_curves", "accuracy_vs_latency"} <= set(acc.Tags()["images"])
    assert "compress_stages/text_summary" in acc.Tags()["tensors"]


def test_mlflow_local_store_default(tracked):
    from mlflow import MlflowClient

    store = tracked.base / "runs" / "mlruns"
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name("edgedistill")
    (r,) = client.search_runs([exp.experiment_id])
    assert r.info.run_name == tracked.run.name and r.info.status == "FINISHED"
    assert r.data.params["train.epochs"] == "2" and r.data.params["track.mlflow"] == "True"
    steps = [(m.step, m.value) for m in client.get_metric_history(r.info.run_id, "student/kd")]
    history = [json.loads(x) for x in (tracked.run / "student" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [(h["epoch"], pytest.approx(h["kd"])) for h in history]
    arts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"report.md", "report.html", "metrics.json", "recipe.yaml", "training_curves.png",
            "compress_stages.json"} <= arts
    assert (store / "artifacts").is_dir()


def read_wandb_records(path: Path) -> list:
    """The records of an offline .wandb file. Hand-written because wandb 0.31 ships no Python reader (its
    DataStore moved into the Go core); the format is wandb's LevelDB-style log: a 7-byte header (':W&B', magic,
    version), then 32 KiB blocks of records, each `crc32 (4) | length (2) | type (1)` + payload; a record split
    across blocks is FIRST, MIDDLE…, LAST pieces."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, records, parts = path.read_bytes(), 7, 32768, [], b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            break
        parts += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            rec = pb.Record()
            rec.ParseFromString(parts)
            records.append(rec)
            parts = b""
    return records


def test_wandb_offline_run_holds_the_history(tracked):
    (run_dir,) = (tracked.run / "wandb").glob("offline-run-*")
    (log,) = run_dir.glob("run-*.wandb")
    history, config, summary = [], {}, {}
    for rec in read_wandb_records(log):
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "config":
            config.update({i.key: json.loads(i.value_json) for i in rec.config.update})
        elif kind == "summary":
            summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.summary.update})
    kd = [(h["student/epoch"], h["student/kd"]) for h in history if "student/kd" in h]
    assert [e for e, _ in kd] == [1, 2]
    assert config["train.epochs"] == 2 and config["student.model"] == tracked.recipe.student.model
    assert "final/student/top1" in summary
    assert (run_dir / "files" / "report.md").exists() and (run_dir / "files" / "training_curves.png").exists()


def test_missing_tracker_library_exits_2_before_work(tmp_path, monkeypatch, capsys):
    from conftest import cli

    monkeypatch.setitem(sys.modules, "mlflow", None)  # import fails as if not installed
    code, out, err = cli(capsys, "demo", f"output.dir={tmp_path / 'runs'}", "track.mlflow=true")
    assert code == 2 and "track.mlflow" in out + err and "pip install mlflow" in out + err
    assert not (tmp_path / "runs").exists()  # refused before the run folder was made
    recipe = load_recipe(None, [f"output.dir={tmp_path / 'runs'}", "track.wandb=true"])
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(UserError, match="pip install wandb") as e:
        run(recipe, quiet())
    assert e.value.key == "track.wandb"


def test_flatten_and_empty_trackers_do_nothing():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": 1, "a.c": "[1, 2]", "d": None}
    t = Trackers()
    assert t.epoch_hook("student") is None  # the engine gets no callback when nothing tracks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on a loopback port (SQLite backend, artifacts in tmp), stopped afterwards."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--default-artifact-root", str(tmp_path / "server-artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    try:
        import urllib.request

        while True:
            assert proc.poll() is None, "mlflow server exited"
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                assert time.time() < deadline, "mlflow server did not answer within 120 s"
                time.sleep(0.5)
        yield uri
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and the workers it started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_mlflow_server_receives_metrics_and_params(tmp_path, mlflow_server):
    from mlflow import MlflowClient

    recipe = load_recipe(None, [*TINY, f"output.dir={tmp_path / 'runs'}", "train.epochs=1", "eval.baseline=false",
                                "track.tensorboard=false", "track.mlflow=true", f"track.mlflow_uri={mlflow_server}",
                                "track.project=tiny"])
    run_dir = run(recipe, quiet())
    assert not (run_dir / "tensorboard").exists() and not (tmp_path / "runs" / "mlruns").exists()
    client = MlflowClient(mlflow_server)
    (r,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert r.info.status == "FINISHED" and r.data.params["track.project"] == "tiny"
    assert [m.step for m in client.get_metric_history(r.info.run_id, "teacher/loss")] == [1]
    assert [m.step for m in client.get_metric_history(r.info.run_id, "student/kd")] == [1]
    assert r.data.metrics["final/student/top1"] == pytest.approx(
        json.loads((run_dir / "metrics.json").read_text())["models"]["student"]["top1"])
    assert "report.md" in {a.path for a in client.list_artifacts(r.info.run_id)}


def test_unreachable_mlflow_server_is_one_line_naming_the_uri(tmp_path):
    """MLflow's own retries (7, back-off factor 2) would wait about four minutes; the run stops in seconds."""
    import time

    import mlflow  # noqa: F401  (imported before the clock starts: a loaded machine imports slowly)

    recipe = load_recipe(None, [f"output.dir={tmp_path}", "track.tensorboard=false", "track.mlflow=true",
                                f"track.mlflow_uri=http://127.0.0.1:{_free_port()}"])
    t0 = time.perf_counter()
    with pytest.raises(UserError, match="mlflow could not start a run.*no server accepts connections") as e:
        Trackers().open(recipe, tmp_path / "run")
    assert e.value.key == "track.mlflow_uri" and time.perf_counter() - t0 < 60  # vs ~250 s of back-off

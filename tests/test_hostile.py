"""Hostile and careless inputs through the real CLI: each is one line, the right exit code, nothing written."""

import os
import pickle
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import cli

from edgedistill.models import create_model, save_model

BOMB = "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 9 if p else ['lol'] * 9)}]\n"
               for p, c in zip(["", "a", "b", "c", "d", "e", "f"], "abcdefg")) + "train: {epochs: *g}\n"
OVERRIDE_BOMB = "train.epochs=[&a [1,1,1,1,1,1,1,1,1,1], " + ", ".join(
    f"&{c} [{', '.join([f'*{p}'] * 10)}]" for p, c in zip("abcd", "bcde")) + ", [" + ", ".join(["*e"] * 10) + "]]"
DIGITS = {"source": "digits", "image_size": 16, "max_train_samples": 64, "max_val_samples": 64, "workers": 0}




class Payload:
    """A pickle that would create a file when unpickled with weights_only=False."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    meta = {"model": "cifar:resnet8", "num_classes": 10, "class_names": [str(i) for i in range(10)],
            "image_size": 16, "mean": [0.5] * 3, "std": [0.25] * 3, "data": DIGITS}
    good = save_model(d / "good.safetensors", create_model("cifar:resnet8", 10), meta)
    blob = good.read_bytes()
    (d / "trunc.safetensors").write_bytes(blob[: len(blob) // 2])
    nan = create_model("cifar:resnet8", 10)
    with torch.no_grad():
        next(nan.parameters())[0, 0, 0, 0] = float("nan")
    save_model(d / "nan.safetensors", nan, meta)
    marker = d / "MARKER"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "evil": Payload(marker)}, d / "evil.pth")
    shutil.copy(d / "evil.pth", d / "evil.safetensors")  # a pickle renamed: refused by its header
    (d / "raw.safetensors").write_bytes(pickle.dumps(Payload(marker)))
    (d / "afile").write_text("a regular file: nothing can be created under it, not even by root")
    (d / "bomb.yaml").write_text(BOMB)
    (d / "dup.yaml").write_text("train:\n  epochs: 3\n  lr: 0.1\n  epochs: 4\n")
    (d / "latin1.yaml").write_bytes("train: {epochs: 1}  # caf\xe9\n".encode("latin-1"))
    (d / "empty.yaml").write_text("# nothing but a comment\n")
    (d / "data5.yaml").write_text("data: 5\n")
    (d / "recipe_dir").mkdir()
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 16, 16])])
    onnx.save(helper.make_model(graph), d / "bare.onnx")
    return d


F = "{d}"  # placeholder for the fixture folder
CASES = [  # (id, args, exit code, fragments the one line must hold)
    ("alias-bomb", ["run", F + "/bomb.yaml"], 2, ["bomb.yaml", "aliases"]),
    ("alias-bomb-override", ["demo", OVERRIDE_BOMB], 2, ["override", "aliases"]),
    ("duplicate-key", ["run", F + "/dup.yaml"], 2, ["duplicate key 'epochs'", "lines 2 and 4"]),
    ("non-utf8", ["run", F + "/latin1.yaml"], 2, ["latin1.yaml", "not UTF-8", "0xe9"]),
    ("recipe-is-folder", ["run", F + "/recipe_dir"], 2, ["recipe_dir", "is a folder"]),
    ("empty-recipe", ["run", F + "/empty.yaml"], 2, ["empty.yaml", "is empty", "{}"]),
    ("section-not-mapping", ["run", F + "/data5.yaml", "data.image_size=16", "--resume"], 2,
     ["data5.yaml", "section 'data'", "int 5"]),
    ("out-under-file", ["demo", "output.dir=" + F + "/afile/runs"], 2, ["output.dir", "afile is a file"]),
    ("out-in-proc", ["demo", "output.dir=/proc/edgedistill-runs"], 2, ["output.dir", "/proc"]),
    ("milestones-1-epoch", ["demo", "train.epochs=1", "train.milestones=[100,-1]"], 2,
     ["train.milestones", "no later epoch"]),
    ("huge-value", ["demo", "data.source=" + "x" * 50_000], 2, ["data.source", "characters)"]),
    ("pickle-teacher-weights", ["demo", "teacher.weights=" + F + "/evil.pth"], 2,
     ["teacher.weights", "pickled Python objects", "save_file"]),
    ("pickle-file-model", ["demo", "student.model=file:" + F + "/evil.safetensors"], 2,
     ["evil.safetensors", "not a safetensors file"]),
    ("pickle-eval", ["eval", F + "/raw.safetensors"], 2, ["raw.safetensors", "not a safetensors file"]),
    ("pickle-profile", ["profile", F + "/evil.safetensors"], 2, ["evil.safetensors", "not a safetensors"]),
    ("pickle-compress", ["compress", F + "/raw.safetensors"], 2, ["raw.safetensors", "not a safetensors"]),
    ("truncated-run", ["demo", "student.model=file:" + F + "/trunc.safetensors"], 2, ["trunc.safetensors",
                                                                                      "truncated"]),
    ("truncated-eval", ["eval", F + "/trunc.safetensors"], 2, ["trunc.safetensors", "truncated"]),
    ("truncated-profile", ["profile", F + "/trunc.safetensors"], 2, ["trunc.safetensors", "truncated"]),
    ("truncated-compress", ["compress", F + "/trunc.safetensors"], 2, ["trunc.safetensors", "truncated"]),
    ("nan-teacher-weights", ["demo", "teacher.model=cifar:resnet8", "teacher.weights=" + F + "/nan.safetensors"],
     2, ["teacher", "NaN or infinite", "conv"]),
    ("eval-json-unwritable", ["eval", F + "/good.safetensors", "--json", F + "/afile/m.json"], 2,
     ["--json", "afile is a file"]),
    ("eval-json-folder", ["eval", F + "/good.safetensors", "--json", F + "/recipe_dir"], 2, ["--json", "folder"]),
    ("profile-runs", ["profile", "cifar:resnet8", "--runs", "-1"], 2, ["--runs -1", "1.."]),
    ("profile-size-0", ["profile", F + "/good.safetensors", "--image-size", "0"], 2, ["--image-size 0"]),
    ("predict-top-k-0", ["predict", F + "/bare.onnx", F + "/afile", "--top-k", "0"], 2, ["--top-k 0"]),
    ("predict-no-meta", ["predict", F + "/bare.onnx", F + "/afile"], 2, ["bare.onnx", "edgedistill compress"]),
    ("compress-out-unwritable", ["compress", F + "/good.safetensors", "compress.stages=[{name: export}]",
                                 "output.dir=" + F + "/afile/out"], 2, ["output.dir", "afile is a file"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_and_writes_nothing(case, files, tmp_path, capsys, monkeypatch):
    name, args, code, fragments = case
    if name == "out-in-proc" and not Path("/proc/self").exists():
        pytest.skip("no procfs here")
    monkeypatch.chdir(tmp_path)  # anything written to the default output.dir (runs/) would land here
    before = sorted(p.name for p in files.iterdir())
    args = [a.replace(F, str(files)) for a in args]
    got, out, err = cli(capsys, *args)
    assert got == code, out + err
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 1000, err[:2000]
    for f in fragments:
        assert f in lines[0], lines[0]
    assert "edgedistill export" not in err and "weights_only set to False" not in err
    assert not (files / "MARKER").exists()  # no pickled payload ever ran
    assert sorted(p.name for p in files.iterdir()) == before
    assert not any(tmp_path.iterdir())  # no run folder, no partial output
    if name.startswith("alias-bomb"):  # refused in well under a CPU second; expanded, it would take minutes and GBs
        from edgedistill.errors import UserError
        from edgedistill.recipe import load_recipe

        t0 = time.process_time()  # CPU time: a loaded machine stretches wall time, not this
        with pytest.raises(UserError, match="aliases"):
            load_recipe(args[1] if args[0] == "run" else None, args[2:] if args[0] == "run" else args[1:])
        assert time.process_time() - t0 < 2


def test_a_chmod_locked_output_folder_is_refused_even_for_root(tmp_path, capsys):
    """Root ignores chmod, so then the lock is procfs, where nobody can create a folder."""
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        target = locked / "runs" if not os.access(locked, os.W_OK) else Path("/proc/edgedistill-runs")
        got, _, err = cli(capsys, "demo", f"output.dir={target}")
        assert got == 2 and "output.dir" in err and "Traceback" not in err, err
        assert not any(locked.iterdir())
    finally:
        os.chmod(locked, 0o700)


def _mount_tmpfs(where: Path, size_kb: int) -> bool:
    try:
        return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)],
                              capture_output=True, check=False, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.parametrize("mechanism", ["tmpfs", "rlimit"])
def test_disk_full_during_training_is_one_line_exit_1_and_keeps_finished_files(mechanism, files, tmp_path, capsys):
    """A real full disk (a 1.5 MB tmpfs; needs root) and a real file-size limit (RLIMIT_FSIZE → EFBIG)."""
    out = tmp_path / "disk"
    out.mkdir()
    mounted = mechanism == "tmpfs" and _mount_tmpfs(out, 1536)
    if mechanism == "tmpfs" and not mounted:
        pytest.skip("cannot mount a tmpfs here (not root)")
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if not mounted:
        resource.setrlimit(resource.RLIMIT_FSIZE, (500_000, old_limit[1]))
    try:
        got, _, err = cli(capsys, "demo", f"output.dir={out}", f"teacher.model=file:{files / 'good.safetensors'}",
                          "eval.baseline=false", "train.epochs=3", "data.max_train_samples=64",
                          "data.max_val_samples=64", "data.workers=0", "train.batch_size=32")
        assert got == 1, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert ("No space left" if mounted else "too large") in err, err
        run = out / "demo"
        assert (run / "recipe.yaml").exists()
        assert not list(run.rglob("*.tmp")), list(run.rglob("*"))  # the atomic write left no partial file
        written = list(run.rglob("*.pt"))
        assert written  # epoch 1's checkpoint got through, and what was written is whole
        for ck in written:
            torch.load(ck, weights_only=True)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
        if mounted:
            subprocess.run(["umount", str(out)], check=False, timeout=10)


def test_an_overflowing_loss_term_is_named_not_the_learning_rate(files, tmp_path, capsys):
    got, _, err = cli(capsys, "demo", f"output.dir={tmp_path}", f"teacher.model=file:{files / 'good.safetensors'}",
                      "eval.baseline=false", "train.epochs=1", "data.max_train_samples=64", "data.workers=0",
                      "distill.terms=[{name: kd, weight: 1.0, T: 1e30}]")
    assert got == 1 and "Traceback" not in err, err
    assert "distill.terms.0 (kd: T=1e+30" in err and "train.lr" not in err, err

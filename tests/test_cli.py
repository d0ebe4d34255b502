import subprocess
import sys

import pytest
import torch
from conftest import cli

from edgedistill.models import create_model


def assert_user_error(res, *fragments):
    code, out, err = res
    assert code == 2, out + err
    assert "Traceback" not in err
    for f in fragments:
        assert f in err, err


@pytest.mark.slow
def test_real_process_exit_code_and_no_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "edgedistill", "run", str(tmp_path / "none.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "recipe file not found" in res.stderr and "Traceback" not in res.stderr


def test_bad_values_exit_2_before_any_work(tmp_path, capsys):
    res = cli(capsys, "demo", "train.epochs=0", "train.epoch=3", f"output.dir={tmp_path}")
    assert_user_error(res, "train.epochs", "greater than 0", "train.epoch", "'epochs'")
    assert not any(tmp_path.iterdir())  # nothing was started


def test_unknown_model_suggests_close_match(tmp_path, capsys):
    res = cli(capsys, "demo", "student.model=cifar:resnet9", f"output.dir={tmp_path}")
    assert_user_error(res, "student.model", "resnet8")
    assert not any(tmp_path.iterdir())


def test_class_count_mismatch_with_resize_off(tmp_path, capsys):
    weights = tmp_path / "five.pth"
    torch.save(create_model("cifar:resnet8", 5).state_dict(), weights)
    res = cli(capsys, "demo", f"student.weights={weights}", "student.resize_head=false", f"output.dir={tmp_path}")
    assert_user_error(res, "student.resize_head", "5 classes", "10")


def test_list_methods_models_data(capsys):
    code, out, _ = cli(capsys, "list", "methods")
    assert code == 0 and "kd" in out and "Hinton" in out
    code, out, _ = cli(capsys, "list", "models", "--source", "cifar")
    assert code == 0 and "resnet8x4" in out and "wrn_40_2" in out
    code, out, _ = cli(capsys, "list", "data")
    assert code == 0 and "imagefolder" in out and "digits" in out


def test_list_unknown_source(capsys):
    assert_user_error(cli(capsys, "list", "models", "--source", "timmm"), "timmm", "'timm'")


@pytest.mark.parametrize("bad", ["nokey", "train=3"])
def test_malformed_override(bad, capsys):
    assert_user_error(cli(capsys, "demo", bad), bad)


def test_profile_a_model_spec(capsys):
    code, out, _ = cli(capsys, "profile", "cifar:resnet8", "--image-size", "16", "--runs", "3", "--num-classes", "10")
    assert code == 0 and "latency_ms_median" in out and "78,042" in out


def test_ctrl_c_says_how_to_resume(capsys, monkeypatch):
    import edgedistill.pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(edgedistill.pipeline, "run", interrupted)
    code, out, err = cli(capsys, "demo")
    assert code == 130 and "--resume" in err and "Traceback" not in err

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import cli

from edgedistill.analysis.cka import linear_cka
from edgedistill.analysis.inherit import error_similarity, inherited_errors
from edgedistill.analysis.perturb import PERTURBATIONS, Pixels, fgsm_pixels, parse_levels, perturb
from edgedistill.errors import UserError
from edgedistill.models import create_model

# --- perturbations ---------------------------------------------------------------------------------------

def _grey(n=4, side=16, value=0.5):
    return torch.full((n, 3, side, side), value)


def _random(n=4, side=16):
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(0))


def test_noise_has_the_asked_std_and_is_seeded():
    px = _grey(8, 32)
    out = perturb("noise", px, 0.05, seed=3)
    assert (out - px).std().item() == pytest.approx(0.05, rel=0.05)
    assert torch.equal(out, perturb("noise", px, 0.05, seed=3))
    assert not torch.equal(out, perturb("noise", px, 0.05, seed=4))


def test_blur_keeps_flat_images_and_smooths_texture():
    assert torch.allclose(perturb("blur", _grey(), 1.0), _grey(), atol=1e-6)
    px = _random()
    weak, strong = perturb("blur", px, 0.5), perturb("blur", px, 1.5)
    assert px.var() > weak.var() > strong.var()


def test_jpeg_is_lossy_and_worse_at_low_quality():
    px = _random()
    err = {q: (perturb("jpeg", px, q) - px).abs().mean().item() for q in (90, 10)}
    assert 0 < err[90] < err[10]
    assert perturb("jpeg", px, 10).shape == px.shape


def test_brightness_and_contrast_follow_their_definitions():
    px = _random() * 0.5
    assert torch.allclose(perturb("brightness", px, 0.6), px * 0.6, atol=1e-6)
    grey = (0.2989 * px[:, 0] + 0.587 * px[:, 1] + 0.114 * px[:, 2]).mean(dim=(1, 2)).view(-1, 1, 1, 1)
    assert torch.allclose(perturb("contrast", px, 0.5), 0.5 * px + 0.5 * grey, atol=1e-5)


def test_fgsm_moves_every_pixel_by_at_most_eps_and_raises_the_loss():
    torch.manual_seed(0)
    model = create_model("cifar:resnet8", 10).eval()
    pix = Pixels((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    px, y = _random(8), torch.arange(8)
    adv = fgsm_pixels(model, px, y, 4 / 255, pix.normalize)
    assert (adv - px).abs().max() <= 4 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        assert F.cross_entropy(model(pix.normalize(adv)), y) > F.cross_entropy(model(pix.normalize(px)), y)


def test_pixels_round_trip():
    pix = Pixels((0.1, 0.2, 0.3), (0.5, 0.4, 0.3))
    px = _random()
    assert torch.allclose(pix.to_pixels(pix.normalize(px)), px, atol=1e-6)


@pytest.mark.parametrize("names,levels,key", [
    ("noise,sparkle", [], "--perturb"),
    (None, ["noise=2"], "--levels"),
    (None, ["jpeg=0"], "--levels"),
    (None, ["blur"], "--levels"),
    (None, ["fgsm=x"], "--levels"),
])
def test_bad_perturbation_names_and_levels_are_refused(names, levels, key):
    with pytest.raises(UserError) as e:
        parse_levels(names, levels)
    assert e.value.key == key


def test_levels_replace_the_defaults():
    got = parse_levels("noise,blur", ["noise=0.01,0.02"])
    assert got == {"noise": (0.01, 0.02), "blur": PERTURBATIONS["blur"][1]}


# --- inherited errors, error similarity, CKA ---------------------------------------------------------------

def test_inherited_errors_on_a_hand_made_case():
    labels = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    teacher = np.array([0, 2, 2, 0, 1, 1, 2, 3])   # wrong on images 1, 3, 4
    student = np.array([0, 2, 1, 1, 0, 1, 2, 3])   # same mistake on 1; other mistake on 3; right on 4
    alone = np.array([0, 1, 2, 0, 1, 1, 2, 3])     # right on 1; same mistakes on 3 and 4
    s, a = inherited_errors(teacher, student, labels), inherited_errors(teacher, alone, labels)
    assert (s["teacher_errors"], s["same_mistake"], s["also_wrong"]) == (3, 1, 2)
    assert s["inherited_rate"] == pytest.approx(1 / 3) and s["student_wrong_rate"] == pytest.approx(2 / 3)
    assert (a["same_mistake"], a["also_wrong"]) == (2, 2)
    assert np.isnan(inherited_errors(labels, student, labels)["inherited_rate"])


def test_error_similarity_identical_and_disjoint():
    labels = np.array([0, 0, 1, 1, 2, 2])
    t = np.array([1, 0, 1, 1, 2, 0])
    same = error_similarity(t, t, labels, 3)
    assert same["confusion_cosine"] == pytest.approx(1) and same["image_error_corr"] == pytest.approx(1)
    other = error_similarity(t, np.array([0, 0, 2, 1, 2, 2]), labels, 3)
    assert other["confusion_cosine"] == pytest.approx(0)


def test_cka_hand_computed_value():
    # x centred = (-1, 0, 1), y centred = (2/3, -1/3, -1/3): <x,y>² / (|x|² |y|²) = 1 / (2 · 2/3) = 0.75
    assert linear_cka(np.array([[1.0], [2.0], [3.0]]), np.array([[1.0], [0.0], [0.0]])) == pytest.approx(0.75)


def test_cka_invariances():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 6)), rng.normal(size=(50, 4))
    y = y + x[:, :4]  # related, so the value is neither 0 nor 1
    base = linear_cka(x, y)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert 0.05 < base < 0.95
    assert linear_cka(x @ q, y) == pytest.approx(base)
    assert linear_cka(3.7 * x, 0.2 * y) == pytest.approx(base)
    assert linear_cka(x + 5.0, y) == pytest.approx(base)  # centring
    assert linear_cka(x, x @ q) == pytest.approx(1.0)
    assert linear_cka(x * np.array([10, 1, 1, 1, 1, 1.0]), y) != pytest.approx(base)  # not any linear map


# --- end to end on a tiny digits run ------------------------------------------------------------------------

TINY = ["data.image_size=16", "data.max_train_samples=128", "data.max_val_samples=64", "teacher.model=cifar:resnet14",
        "teacher.epochs=1", "train.epochs=1", "train.batch_size=32", "eval.latency_runs=1", "eval.warmup_runs=1"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny digits run (teacher, student alone, distilled student) shared by the module's audits."""
    from edgedistill.pipeline import run
    from edgedistill.recipe import load_recipe
    from edgedistill.recipes import recipe_path

    out = tmp_path_factory.mktemp("audit")
    return run(load_recipe(recipe_path("demo"), TINY + [f"output.dir={out / 'runs'}"]), _quiet())


def _quiet():
    import io

    from rich.console import Console

    return Console(file=io.StringIO(), width=200)


@pytest.mark.slow
def test_audit_end_to_end(tiny_run, capsys):
    code, out, err = cli(capsys, "audit", str(tiny_run), "--max-images", "48", "--perturb", "noise,jpeg,fgsm,brightness",
                         "--levels", "brightness=1", "--levels", "noise=0.1,0.3",
                         "--levels", "fgsm=0.004,0.05,0.2")  # large steps: even the 1-epoch teacher is fooled
    assert code == 0, err
    assert "Fidelity audit" in out and "Under perturbation" in out
    audit = json.loads((tiny_run / "audit" / "audit.json").read_text())
    assert audit["n_images"] == 48 and set(audit["fidelity"]) == {"student", "student_alone"}
    fid = audit["fidelity"]["student"]
    assert 0 <= fid["agreement"] <= 100 and fid["kl"] >= 0 and 0 <= fid["js"] <= np.log(2) + 1e-9
    assert 0 <= fid["cka"] <= 1 + 1e-9
    inh = audit["inherited"]["student"]
    assert inh["same_mistake"] <= inh["also_wrong"] <= inh["teacher_errors"] <= 48
    # brightness ×1 changes nothing: same images, same labels, same order → the clean accuracy exactly
    (row,) = audit["perturbations"]["brightness"]["rows"]
    assert row["top1"] == {m: audit["clean"][m]["top1"] for m in audit["clean"]}
    assert [r["level"] for r in audit["perturbations"]["noise"]["rows"]] == [0.1, 0.3]
    assert len(audit["perturbations"]["fgsm"]["rows"]) == 3
    # teacher accuracy falls under its own FGSM step (an FGSM that changed nothing would keep it)
    fgsm = audit["perturbations"]["fgsm"]["rows"]
    assert fgsm[-1]["top1"]["teacher"] < audit["clean"]["teacher"]["top1"]
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert metrics["fidelity"]["student"]["agreement"] == fid["agreement"]
    assert metrics["models"]["student"]["top1"] >= 0  # the rest of metrics.json kept
    html = (tiny_run / "audit" / "report.html").read_text()
    assert "data:image/png;base64" in html and "Inherited errors" in html
    assert (tiny_run / "audit" / "robustness.png").stat().st_size > 1000


@pytest.mark.parametrize("args,fragment", [
    (["--max-images", "0"], "--max-images"),
    (["--batch-size", "0"], "--batch-size"),
    (["--perturb", "rain"], "--perturb"),
    (["--levels", "blur=99"], "--levels"),
    (["--split", "train"], "--split"),
])
@pytest.mark.slow  # pays for the tiny run fixture
def test_audit_bad_options_exit_2(tiny_run, capsys, args, fragment):
    code, _out, err = cli(capsys, "audit", str(tiny_run), *args)
    assert code == 2 and fragment in err and "Traceback" not in err


@pytest.mark.slow
def test_audit_without_teacher_or_student_exit_2(tiny_run, tmp_path, capsys):
    import shutil

    no_student = tmp_path / "no_student"
    shutil.copytree(tiny_run, no_student)
    shutil.rmtree(no_student / "student")
    code, _, err = cli(capsys, "audit", str(no_student))
    assert code == 2 and "no distilled student" in err
    no_teacher = tmp_path / "no_teacher"
    shutil.copytree(tiny_run, no_teacher)
    shutil.rmtree(no_teacher / "teacher")
    from edgedistill.analysis.audit import load_inputs

    with pytest.raises(UserError, match="no teacher"):
        load_inputs(no_teacher)
    code, _, err = cli(capsys, "audit", str(tmp_path / "nothing"))
    assert code == 2 and "recipe.yaml" in err


@pytest.mark.slow
def test_alone_baseline_from_another_run_of_the_same_data(tiny_run, tmp_path, capsys):
    """--alone RUN: compare's alone arm serves as the baseline; a run on other images is refused naming --alone."""
    import shutil

    import yaml

    from edgedistill.analysis.audit import load_inputs

    kd = tmp_path / "kd"
    shutil.copytree(tiny_run, kd)
    shutil.rmtree(kd / "student_alone")
    alone = tmp_path / "alone"
    shutil.copytree(tiny_run, alone)
    shutil.copytree(tiny_run / "student_alone", alone / "student", dirs_exist_ok=True)
    assert "student_alone" not in load_inputs(kd).models
    got = load_inputs(kd, alone).models["student_alone"][1]
    want = load_inputs(tiny_run).models["student_alone"][1]
    assert all(torch.equal(a, b) for a, b in zip(got.state_dict().values(), want.state_dict().values(), strict=True))
    other = tmp_path / "other"
    shutil.copytree(alone, other)
    recipe = yaml.safe_load((other / "recipe.yaml").read_text())
    recipe["data"]["split_seed"] = 99
    (other / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    code, _, err = cli(capsys, "audit", str(kd), "--alone", str(other), "--max-images", "16")
    assert code == 2 and "--alone" in err and "validation split" in err


@pytest.mark.slow  # pays for the tiny run fixture
def test_alone_that_is_not_a_run_exits_2_naming_alone(tiny_run, tmp_path, capsys):
    code, _, err = cli(capsys, "audit", str(tiny_run), "--alone", str(tmp_path / "nothing"))
    assert code == 2 and err.startswith("error: --alone:") and "RUN_DIR" not in err and "Traceback" not in err

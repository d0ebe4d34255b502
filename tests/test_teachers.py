"""Teachers beyond one labelled classifier: ensemble rules, unlabeled images, function matching, CLIP zero-shot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import cli, pipeline_context
from PIL import Image

from edgedistill.data.unlabeled import NO_LABEL, MixedLoader, UnlabeledImages
from edgedistill.distill import Distiller
from edgedistill.distill.ensemble import Ensemble, combine_probs, fit_class_weights
from edgedistill.models import create_model, save_model

FAST = ["data.image_size=16", "data.max_train_samples=128", "data.max_val_samples=64", "data.workers=0",
        "data.hflip=false", "student.model=cifar:resnet8", "train.epochs=1", "train.batch_size=32",
        "eval.latency_runs=2", "eval.warmup_runs=0", "eval.baseline=false"]


# ---------------------------------------------------------------- ensemble rules, by hand

P1 = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
P2 = torch.tensor([[0.4, 0.5, 0.1], [0.3, 0.3, 0.4]])


def test_mean_rule_is_the_weighted_mean_of_probabilities():
    got = combine_probs([P1, P2], "mean", torch.tensor([1.0, 3.0]))
    assert torch.allclose(got, torch.tensor([[0.475, 0.425, 0.1], [0.25, 0.25, 0.5]]))


def test_geometric_rule_is_the_renormalized_weighted_geometric_mean():
    got = combine_probs([P1, P2], "geometric", torch.tensor([1.0, 3.0]))
    g0 = torch.tensor([0.7 ** 0.25 * 0.4 ** 0.75, 0.2 ** 0.25 * 0.5 ** 0.75, 0.1])  # 0.1 ** 0.25 * 0.1 ** 0.75
    assert torch.allclose(got[0], g0 / g0.sum())


def test_geometric_ensemble_softened_by_a_temperature_is_the_mean_of_softened_logits():
    z1, z2 = torch.randn(6, 5) * 8, torch.randn(6, 5) * 8
    ens = Ensemble([torch.nn.Identity(), torch.nn.Identity()], "geometric")
    combined = ens.combine([z1, z2])
    assert torch.allclose(combined.exp().sum(1), torch.ones(6))
    # what KD at T=4 sees: the members' mean logit softened, not the mean probability softened
    assert torch.allclose((combined / 4).softmax(1), ((z1 + z2) / 2 / 4).softmax(1), atol=1e-6)
    mean = Ensemble([torch.nn.Identity(), torch.nn.Identity()], "mean").combine([z1, z2])
    assert not torch.allclose((mean / 4).softmax(1), ((z1 + z2) / 2 / 4).softmax(1), atol=1e-3)


def test_confidence_rule_weights_each_image_by_each_teachers_top_probability():
    got = combine_probs([P1, P2], "confidence", torch.tensor([1.0, 1.0]))
    # image 0: confidences 0.7 and 0.5 → (0.7·P1 + 0.5·P2) / 1.2; image 1: 0.8 and 0.4
    want0 = (0.7 * P1[0] + 0.5 * P2[0]) / 1.2
    want1 = (0.8 * P1[1] + 0.4 * P2[1]) / 1.2
    assert torch.allclose(got, torch.stack([want0, want1]))
    assert torch.allclose(got[0], torch.tensor([0.575, 0.325, 0.1]), atol=1e-6)


def test_class_weights_rule_and_its_fit_on_labelled_images():
    # teacher 0 right on class 0 twice, wrong on class 1; teacher 1 the reverse
    l0 = torch.tensor([[5.0, 0, 0], [5.0, 0, 0], [5.0, 0, 0]])
    l1 = torch.tensor([[0, 5.0, 0], [0, 5.0, 0], [0, 5.0, 0]])
    labels = torch.tensor([0, 0, 1])
    w = fit_class_weights([l0, l1], labels, 3, prior=1.0)
    # recall smoothed (hits + 1) / (seen + 2): teacher 0 class 0 = 3/4, class 1 = 1/3, class 2 = 1/2
    assert torch.allclose(w, torch.tensor([[3 / 4, 1 / 3, 1 / 2], [1 / 4, 2 / 3, 1 / 2]]))
    got = combine_probs([P1, P2], "class_weights", torch.ones(2), w)
    q = (w[0] * P1[0] + w[1] * P2[0]) / (w[0] + w[1])
    assert torch.allclose(got[0], q / q.sum())
    assert torch.allclose(got.sum(1), torch.ones(2))


def test_ensemble_module_returns_log_probabilities_and_taps_members():
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    ens = Ensemble([a, b], "mean")
    x = torch.randn(5, 4)
    want = (a(x).softmax(1) + b(x).softmax(1)) / 2
    assert torch.allclose(ens(x).exp(), want, atol=1e-6)
    from edgedistill.models import FeatureTaps

    with FeatureTaps(ens, ["members.1"]) as t:
        ens(x)
    assert torch.allclose(t.features["members.1"], b(x))


# ---------------------------------------------------------------- unlabeled images


def _write_images(folder, n=12, size=10, bad=0):
    (folder / "cam1" / "deep").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = folder / "cam1" / ("deep" if i % 2 else "")
        Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(sub / f"im{i}.png")
    for i in range(bad):
        (folder / f"broken{i}.jpg").write_bytes(b"not an image")
    return folder


def test_unlabeled_loader_never_yields_a_label_into_the_loss(tmp_path):
    ds = UnlabeledImages(_write_images(tmp_path / "u", bad=1), bad_images="skip")  # fail is the default (issue 26)
    assert len(ds) == 12 and ds.skipped == 1
    assert {ds[i][1] for i in range(len(ds))} == {NO_LABEL}
    labelled = [(torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 1]))] * 3
    unl = [(torch.randn(2, 3, 8, 8), torch.full((2,), NO_LABEL))]
    batches = list(MixedLoader(labelled, unl))
    assert len(batches) == 3
    for images, labels in batches:
        assert images.shape[0] == 6 and labels[:4].tolist() == [0, 1, 2, 1] and (labels[4:] == NO_LABEL).all()
    # the cross-entropy of a mixed batch is that of its labelled rows alone; an all-unlabeled batch gives 0
    student = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64, 3))
    d = Distiller(student)
    images, labels = batches[0]
    mixed = d((images, labels))["ce"]
    alone = torch.nn.functional.cross_entropy(student(images[:4]), labels[:4])
    assert torch.allclose(mixed, alone)
    none = d((images[4:], labels[4:]))
    assert float(none["ce"].detach()) == 0.0
    # function matching: mixup over the batch, and every label dropped
    fm = list(MixedLoader(labelled, unl, mixup=True))
    assert all((lb == NO_LABEL).all() for _, lb in fm)


def test_unlabeled_folder_with_no_readable_image_exits_2_naming_the_key(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.jpg").write_bytes(b"nope")
    code, out, err = cli(capsys, "run", "recipes/demo.yaml", f"output.dir={tmp_path}/runs",
                         f"data.unlabeled={empty}", *FAST)
    assert code == 2 and "data.unlabeled" in out + err and "none readable" in out + err


def test_unlabeled_refuses_terms_that_read_labels(tmp_path, capsys):
    folder = _write_images(tmp_path / "u")
    code, out, err = cli(capsys, "run", "recipes/demo.yaml", f"output.dir={tmp_path}/runs", f"data.unlabeled={folder}",
                         "distill.terms=[{name: dkd}]", *FAST)
    assert code == 2 and "distill.terms" in out + err and "dkd" in out + err


# ---------------------------------------------------------------- several teachers, end to end

DIGITS = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def teacher_files(tmp_path_factory):
    """Two small teachers of different architectures, saved as edgedistill checkpoints (random weights: the
    tests check the wiring, not accuracy), and one trained on other class names."""
    folder = tmp_path_factory.mktemp("teachers")
    out = []
    for i, spec in enumerate(["cifar:resnet8", "cifar:resnet14"]):
        torch.manual_seed(i)
        m = create_model(spec, 10)
        out.append(save_model(folder / f"t{i}.safetensors", m,
                              {"model": spec, "num_classes": 10, "class_names": DIGITS}))
    other = DIGITS[:8] + ["cat", "dog"]
    out.append(save_model(folder / "other.safetensors", create_model("cifar:resnet8", 10),
                          {"model": "cifar:resnet8", "num_classes": 10, "class_names": other}))
    return out


@pytest.fixture
def plain(tmp_path):
    """A recipe that leaves the teacher section at its defaults (demo.yaml sets one)."""
    path = tmp_path / "plain.yaml"
    path.write_text("data: {source: digits, augment: padcrop}\n")
    return path


def _members(files, extra=""):
    return (f"teachers.models=[{{model: cifar:resnet8, weights: {files[0]}}}, "
            f"{{model: cifar:resnet14, weights: {files[1]}{extra}}}]")


@pytest.mark.parametrize(("rule", "cached"), [("class_weights", True), ("per_term", True), ("confidence", False),
                                             ("geometric", True)])
def test_several_teachers_end_to_end(tmp_path, capsys, teacher_files, rule, cached, plain):
    terms = {"per_term": "distill.terms=[{name: kd, teacher: 0}, {name: hidden_align, teacher: 1, weight: 0.5}]",
             "confidence": "distill.terms=[{name: kd}, {name: hidden_align, teacher: 1, weight: 0.5}]",  # live taps
             }.get(rule, "distill.terms=[{name: kd}]")
    code, out, err = cli(capsys, "run", plain, f"output.dir={tmp_path}/runs", *FAST,
                         _members(teacher_files, ", weight: 2"), f"teachers.ensemble={rule}", terms,
                         f"distill.teacher_cache={str(cached).lower()}", f"distill.cache_dir={tmp_path}/cache")
    assert code == 0, out + err
    run = next((tmp_path / "runs").iterdir())
    m = json.loads((run / "metrics.json").read_text())
    assert {"teacher", "teacher_0", "teacher_1", "student"} <= set(m["models"])
    assert m["models"]["teacher"]["model"] == f"ensemble:{rule}(2)"
    assert m["models"]["teacher_1"]["model"] == "cifar:resnet14"
    if cached:
        assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 2  # one per member (not locks)
    if rule == "class_weights":
        assert "per-class weights fitted on 128 train images" in out


def test_recipe_ensemble_is_the_weighted_mean_by_default(teacher_files, plain):
    from edgedistill.models import load_model
    from edgedistill.recipe import load_recipe
    from edgedistill.teachers.build import build_teacher

    recipe = load_recipe(plain, [*FAST, _members(teacher_files, ", weight: 3")])
    assert recipe.teachers.ensemble == "mean"
    ens = build_teacher(recipe, DIGITS).eval()
    a, b = (load_model(f)[0].eval() for f in teacher_files[:2])
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pa, pb, got = a(x).softmax(1), b(x).softmax(1), ens(x).exp()
    assert torch.allclose(got, (pa + 3 * pb) / 4, atol=1e-6)  # member 1 counts three times
    assert (got - (pa + pb) / 2).abs().max() > 1e-3  # and that is not the plain mean


def test_a_member_term_learns_from_its_member_live_and_from_the_ensemble_cache():
    from edgedistill.distill import build_terms
    from edgedistill.distill.ensemble import EnsembleCache
    from edgedistill.losses.kd import kd_loss
    from edgedistill.recipe import DistillConfig

    torch.manual_seed(0)
    a, b, student = (torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5)) for _ in range(3))
    for m in (a, b):
        m[1].weight.data *= 8  # confident members: their probabilities differ clearly
    ens = Ensemble([a, b], "mean", [1.0, 3.0])
    x, y = torch.randn(6, 3, 2, 2), torch.tensor([0, 1, 2, 3, 4, 0])
    cfg = DistillConfig(terms=[{"name": "kd", "T": 2.0, "teacher": 1}, {"name": "kd", "T": 2.0}])
    live = Distiller(student, ens, build_terms(cfg, student, ens))
    cache = EnsembleCache(ens, [lambda batch, m=m: (m(batch[0]).detach(), {}) for m in (a, b)])
    cached = Distiller(student, ens, build_terms(cfg, student, ens), teacher_outputs=cache)
    logits, feats = cache((x, y))
    assert torch.allclose(logits, ens(x)) and torch.equal(feats["members.1"], b(x).detach())
    s = student(x)
    for d in (live, cached):
        out = d((x, y))
        assert out["kd"].item() == pytest.approx(kd_loss(s, b(x), 2.0).item(), rel=1e-5)  # member 1 alone
        assert out["kd_2"].item() == pytest.approx(kd_loss(s, ens(x), 2.0).item(), rel=1e-5)  # the weighted mean
    assert abs(kd_loss(s, b(x), 2.0).item() - kd_loss(s, ens(x), 2.0).item()) > 1e-3


def test_class_weights_are_each_members_recall_on_the_train_split(teacher_files, plain, tmp_path):
    from edgedistill.data.dataset import TransformedDataset
    from edgedistill.data.transforms import build_transform
    from edgedistill.recipe import load_recipe
    from edgedistill.teachers.build import build_teacher, fit_ensemble

    recipe = load_recipe(plain, [*FAST, _members(teacher_files), "teachers.ensemble=class_weights",
                                 "teachers.fit_samples=100000"])
    ctx = pipeline_context(recipe, tmp_path)
    ens = build_teacher(recipe, DIGITS).eval()
    fit_ensemble(ctx, ens)
    ds = TransformedDataset(ctx.data.train.base, build_transform(recipe.data, train=False))
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    y = torch.tensor([ds[i][1] for i in range(len(ds))])
    assert len(ds) == 128
    with torch.no_grad():
        want = fit_class_weights([m(x) for m in ens.members], y, 10)
    assert torch.allclose(ens.class_weights, want)


def test_teachers_whose_classes_disagree_exit_2_naming_the_classes(tmp_path, capsys, teacher_files, plain):
    members = (f"teachers.models=[{{model: cifar:resnet8, weights: {teacher_files[0]}}}, "
               f"{{model: cifar:resnet8, weights: {teacher_files[2]}}}]")
    code, out, err = cli(capsys, "run", plain, f"output.dir={tmp_path}/runs", *FAST, members)
    text = out + err
    assert code == 2 and "teachers.models.1.weights" in text and "'cat', 'dog'" in text and "'8', '9'" in text


def test_a_teacher_that_cannot_be_loaded_is_named(tmp_path, capsys, teacher_files, plain):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 64)
    members = (f"teachers.models=[{{model: cifar:resnet8, weights: {teacher_files[0]}}}, "
               f"{{model: cifar:resnet8, weights: {broken}}}]")
    code, out, err = cli(capsys, "run", plain, f"output.dir={tmp_path}/runs", *FAST, members)
    assert code == 2 and "teachers.models.1.weights" in out + err


def test_per_term_needs_every_term_to_name_its_teacher(tmp_path, capsys, teacher_files, plain):
    code, out, err = cli(capsys, "run", plain, f"output.dir={tmp_path}/runs", *FAST,
                         _members(teacher_files), "teachers.ensemble=per_term", "distill.terms=[{name: kd}]")
    assert code == 2 and "distill.terms.0.teacher" in out + err


def test_teachers_exclusive_with_a_changed_teacher_section(tmp_path, capsys, teacher_files):
    code, out, err = cli(capsys, "run", "recipes/demo.yaml", f"output.dir={tmp_path}/runs", *FAST,
                         _members(teacher_files))  # demo.yaml sets teacher.model/epochs
    assert code == 2 and "teacher:" in out + err and "exclusive" in out + err


@pytest.mark.parametrize("fm", [False, True])
def test_the_students_batches_carry_the_unlabeled_images(tmp_path, teacher_files, plain, fm):
    from edgedistill.recipe import load_recipe
    from edgedistill.teachers.student_loader import mixes_unlabeled, student_loader

    folder = _write_images(tmp_path / "u", n=40)
    recipe = load_recipe(plain, [*FAST, f"data.unlabeled={folder}", "teacher.model=cifar:resnet8",
                                 f"teacher.weights={teacher_files[0]}", f"distill.function_matching={str(fm).lower()}"])
    assert mixes_unlabeled(recipe, "student") and not mixes_unlabeled(recipe, "student_alone")
    ctx = pipeline_context(recipe, tmp_path)
    batches = list(student_loader(ctx, ctx.loader("train")))
    assert len(batches) == 128 // 32
    for images, labels in batches:
        assert images.shape[0] == 32 + 32  # each step: a labelled batch and as many unlabeled images
        unlabeled = labels == NO_LABEL
        assert int(unlabeled.sum()) == (64 if fm else 32)  # function matching drops every label
        if not fm:
            assert not unlabeled[:32].any() and unlabeled[32:].all()


@pytest.mark.parametrize("fm", [False, True])
def test_unlabeled_images_and_function_matching_end_to_end(tmp_path, capsys, teacher_files, plain, fm):
    folder = _write_images(tmp_path / "u", n=40)
    code, out, err = cli(capsys, "run", plain, f"output.dir={tmp_path}/runs", *FAST, f"data.unlabeled={folder}",
                         "teacher.model=cifar:resnet8", f"teacher.weights={teacher_files[0]}",
                         f"distill.function_matching={str(fm).lower()}", "distill.teacher_cache=true",
                         f"distill.cache_dir={tmp_path}/cache")
    assert code == 0, out + err
    assert "teacher cache off for the student" in out
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    run = next((tmp_path / "runs").iterdir())
    hist = [json.loads(x) for x in (run / "student" / "metrics.jsonl").read_text().splitlines()]
    if fm:  # every label dropped: the cross-entropy never contributes
        assert hist[-1]["ce"] == 0.0 and hist[-1]["kd"] > 0
    else:
        assert hist[-1]["ce"] > 0


# ---------------------------------------------------------------- CLIP zero-shot teacher


def _tiny_clip(folder, with_text=True):
    """A tiny random CLIPModel and a word-level tokenizer, saved offline (nothing downloaded)."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["<unk>", "<pad>", "<eos>", "a", "photo", "of", "the", "digit", "."] + DIGITS
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                                eos_token="<eos>")
    text = {"vocab_size": len(words), "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                "num_attention_heads": 2, "max_position_embeddings": 16, "eos_token_id": 2, "pad_token_id": 1}
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                  "image_size": 16, "patch_size": 8}
    torch.manual_seed(0)
    cfg = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=8)
    model = transformers.CLIPModel(cfg)
    with torch.no_grad():
        model.logit_scale.fill_(1.7)
    if with_text:
        model.save_pretrained(folder)
    else:
        transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**vision)).save_pretrained(folder)
    fast.save_pretrained(folder)
    return model, fast


def test_zero_shot_logits_equal_clips_own(tmp_path):
    model, tok = _tiny_clip(tmp_path / "clip")
    teacher = create_model(f"hf-clip:{tmp_path / 'clip'}", 10, weights="pretrained")
    teacher.set_classes(DIGITS, ["a photo of the digit {} ."])
    x = torch.randn(3, 3, 16, 16)  # already in CLIP's size and normalization: no resize, no renormalization
    enc = tok([f"a photo of the digit {c} ." for c in DIGITS], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=x).logits_per_image
        got = teacher(x)
    assert got.shape == (3, 10)
    assert torch.allclose(got, want, atol=1e-5)
    assert not any(k.startswith("text") for k in teacher.state_dict())  # the text tower is not carried along


def test_clip_zero_shot_teacher_end_to_end_and_bad_inputs(tmp_path, capsys, plain):
    _tiny_clip(tmp_path / "clip")
    base = ["run", plain, f"output.dir={tmp_path}/runs", *FAST, f"teacher.model=hf-clip:{tmp_path / 'clip'}",
            "teacher.weights=pretrained"]
    code, out, err = cli(capsys, *base, "teacher.prompts=['a photo of the digit {} .', 'the digit {}']")
    assert code == 0, out + err
    m = json.loads(next((tmp_path / "runs").iterdir()).joinpath("metrics.json").read_text())
    assert m["models"]["teacher"]["model"].startswith("hf-clip:")
    code, out, err = cli(capsys, *base, "teacher.prompts=['a photo of a digit']")
    assert code == 2 and "teacher.prompts" in out + err and "{}" in out + err
    _tiny_clip(tmp_path / "vision", with_text=False)
    code, out, err = cli(capsys, *base[:-2], f"teacher.model=hf-clip:{tmp_path / 'vision'}", "teacher.weights=pretrained")
    assert code == 2 and "teacher.model" in out + err and "text tower" in out + err


def test_clip_source_is_listed(capsys):
    code, out, _err = cli(capsys, "list", "models")
    assert code == 0 and "hf-clip" in out


# ---------------------------------------------------------------- self-supervised feature teacher


def test_dinov2_feature_teacher_with_a_linear_probe(tmp_path, capsys, plain):
    """A tiny random Dinov2Model (no classifier) as hf:DIR: its head is probed on frozen features, and the
    student learns its token map through hidden_align's trained projector plus KD from the probe."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.Dinov2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                    image_size=16, patch_size=4)
    backbone = transformers.Dinov2Model(cfg)
    backbone.save_pretrained(tmp_path / "dino")
    code, out, err = cli(capsys, "run", plain, f"output.dir={tmp_path}/runs", *FAST,
                         f"teacher.model=hf:{tmp_path / 'dino'}", "teacher.weights=pretrained", "teacher.probe=true",
                         "teacher.epochs=1", "distill.terms=[{name: kd}, {name: hidden_align, weight: 0.5}]")
    assert code == 0, out + err
    from safetensors.torch import load_file

    run = next((tmp_path / "runs").iterdir())
    trained = load_file(run / "teacher" / "model.safetensors")
    before = backbone.state_dict()
    frozen = [k for k in before if f"hf.dinov2.{k}" in trained]
    assert frozen and all(torch.equal(before[k], trained[f"hf.dinov2.{k}"]) for k in frozen)
    hist = [json.loads(x) for x in (run / "student" / "metrics.jsonl").read_text().splitlines()]
    assert hist[-1]["hidden_align"] > 0
    assert (run / "teacher" / "metrics.jsonl").read_text().strip()  # the probe was trained (1 epoch)


@pytest.mark.parametrize("overrides, trained", [
    ([], True),  # no weights: trained here
    (["teacher.weights=pretrained"], False),
    (["teacher.weights=pretrained", "teacher.probe=true"], True),  # its head is trained here
    (["teacher.model=file:/x.safetensors"], False),
    (["teacher.model=hf-clip:/clip"], False),  # zero-shot
    (["distill.terms=[]"], False),  # a scheme without a teacher term trains none
])
def test_one_rule_says_whether_the_teacher_is_trained_here(overrides, trained, tmp_path):
    """teachers.rule.trains_teacher answers for the pipeline, the memory estimate, the teacher lock and the search;
    the search trains a shared teacher only when it starts from nothing (given weights: each trial loads them)."""
    from rich.console import Console

    from edgedistill.recipe import build_recipe
    from edgedistill.search.trials import prepare_teacher
    from edgedistill.teachers.rule import trains_teacher

    recipe = build_recipe({}, overrides)
    assert trains_teacher(recipe) is trained
    if overrides:  # never trains anything here: None before any work
        assert prepare_teacher(recipe, tmp_path, Console(quiet=True)) is None

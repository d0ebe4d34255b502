from pathlib import Path

import pytest

from edgedistill.errors import UserError
from edgedistill.recipe import Recipe, build_recipe, load_recipe
from edgedistill.recipes import recipe_path


def err(overrides=None, data=None) -> str:
    with pytest.raises(UserError) as e:
        build_recipe(data or {}, overrides or [])
    return str(e.value)


def test_defaults_and_overrides_are_typed():
    r = build_recipe({}, ["train.epochs=5", "train.lr=0.1", "data.image_size=24", "train.milestones=[2,4]"])
    assert isinstance(r, Recipe)
    assert r.train.epochs == 5 and r.train.lr == 0.1 and r.data.image_size == 24
    assert r.train.milestones == [2, 4]


def test_override_inside_a_term_list():
    r = build_recipe({}, ["distill.terms.0.T=2.5", "distill.terms.0.weight=0.5"])
    assert r.distill.terms[0].params == {"T": 2.5}
    assert r.distill.terms[0].weight == 0.5


def test_shipped_recipes_validate(tmp_path):
    demo = load_recipe(recipe_path("demo"))
    assert demo.data.source == "digits" and demo.teacher.model.startswith("cifar:")
    r = load_recipe(Path(__file__).parents[1] / "recipes" / "imagefolder.yaml", [f"data.root={tmp_path}"])
    assert r.data.root == tmp_path


def test_unknown_key_names_it_and_suggests():
    msg = err(["train.epoch=5"])
    assert "train.epoch" in msg and "'epochs'" in msg


def test_unknown_section():
    msg = err(["trian.epochs=5"])
    assert "trian" in msg and "'train'" in msg


def test_wrong_type_names_key_and_value():
    msg = err(["train.epochs=abc"])
    assert "train.epochs" in msg and "abc" in msg


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.epochs=0", "train.epochs"),
        ("train.epochs=-3", "train.epochs"),
        ("train.lr=0", "train.lr"),
        ("train.batch_size=0", "train.batch_size"),
        ("data.image_size=0", "data.image_size"),
        ("distill.terms.0.T=0", "T"),
        ("distill.terms.0.T=-1", "T"),
        ("distill.terms.0.weight=-0.5", "weight"),
        ("distill.ce_weight=-1", "distill.ce_weight"),
        ("train.label_smoothing=1.5", "train.label_smoothing"),
        ("train.device=tpu", "train.device"),
    ],
)
def test_impossible_values_are_rejected(override, key):
    msg = err([override])
    assert key in msg
    assert override.split("=", 1)[1] in msg  # the bad value is shown


def test_unknown_method_suggests_close_match():
    msg = err(data={"distill": {"terms": [{"name": "kdd", "weight": 1}]}})
    assert "kdd" in msg and "'kd'" in msg


def test_unknown_term_parameter():
    msg = err(data={"distill": {"terms": [{"name": "kd", "weight": 1, "temperature": 4}]}})
    assert "temperature" in msg


def test_missing_data_root(tmp_path):
    msg = err(["data.source=imagefolder", f"data.root={tmp_path / 'nope'}"])
    assert "data.root" in msg and "nope" in msg and "does not exist" in msg


def test_root_required_for_folder_sources():
    assert "data.root" in err(["data.source=imagefolder"])


def test_unknown_data_source():
    msg = err(["data.source=imagefolders"])
    assert "imagefolders" in msg and "'imagefolder'" in msg


def test_bad_model_prefix():
    msg = err(["student.model=timn:resnet18"])
    assert "student.model" in msg and "'timm'" in msg


def test_missing_weights_file(tmp_path):
    msg = err([f"teacher.weights={tmp_path / 'missing.pth'}"])
    assert "teacher.weights" in msg and "missing.pth" in msg


def test_warmup_longer_than_training():
    assert "warmup_epochs" in err(["train.epochs=2", "train.warmup_epochs=3"])


def test_warmup_longer_than_the_teachers_training():
    msg = err(["train.epochs=6", "train.warmup_epochs=2", "teacher.epochs=2"])
    assert "teacher.epochs (2)" in msg and "warmup_epochs (2)" in msg
    err_free = ["train.epochs=6", "train.warmup_epochs=2", "teacher.epochs=3"]
    build_recipe({}, err_free)  # one epoch past the warm-up is allowed


def test_yaml_python_tags_are_refused_not_run(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.yaml"
    bad.write_text(f'train: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(UserError, match="not valid YAML"):
        load_recipe(bad)
    assert not marker.exists()


def test_recipe_round_trips_through_yaml(tmp_path):
    r = build_recipe({}, ["train.epochs=3", "distill.terms.0.T=2"])
    path = tmp_path / "r.yaml"
    path.write_text(r.to_yaml())
    assert load_recipe(path) == r


def test_not_a_mapping(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(UserError, match="mapping"):
        load_recipe(p)

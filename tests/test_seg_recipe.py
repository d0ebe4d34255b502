"""The task layer in the recipe: names must fit the task (exit 2, naming the key and what is allowed), and a
classification recipe reads and writes exactly as before."""

import pytest
import yaml

from edgedistill.errors import UserError
from edgedistill.recipe import build_recipe, load_recipe
from edgedistill.tasks import task_chain
from tests.conftest import invoke

SEG = {"task": "segmentation", "data": {"source": "seg-shapes"},
       "teacher": {"model": "seg:lraspp_mobilenet_v3_large"}, "student": {"model": "seg:lraspp_mobilenet_v3_small"},
       "distill": {"terms": [{"name": "pixel_kd"}, {"name": "cwd"}, {"name": "pairwise"}, {"name": "fitnet"}]}}


def _refused(data, *overrides):
    with pytest.raises(UserError) as e:
        build_recipe(data, list(overrides))
    return str(e.value)


def test_segmentation_recipe_and_its_demo_validate():
    assert build_recipe(SEG).task == "segmentation"
    demo = load_recipe("recipes/seg-demo.yaml")
    assert demo.task == "segmentation" and demo.data.source == "seg-shapes"
    assert yaml.safe_load(demo.to_yaml())["task"] == "segmentation"


def test_classification_recipe_is_written_as_before():
    text = build_recipe({}).to_yaml()
    assert "task" not in yaml.safe_load(text) and "segmentation" not in yaml.safe_load(text)
    assert build_recipe({}, ["task=classification"]).to_yaml() == text


def test_detection_needs_a_detection_source():
    msg = _refused({"distill": {"terms": []}}, "task=detection")
    assert "student.model='cifar:resnet8' does not fit task=detection" in msg and "a det: model" in msg


def test_a_classification_only_method_on_segmentation_is_refused():
    msg = _refused({**SEG, "distill": {"terms": [{"name": "pixel_kd"}, {"name": "kd"}]}})
    assert "distill.terms.1" in msg and "'kd'" in msg and "pixel_kd" in msg and "cwd" in msg


def test_a_segmentation_method_or_source_or_model_on_classification_is_refused():
    assert "allowed: kd" not in _refused({"distill": {"terms": [{"name": "cwd"}]}})
    assert "does not apply to task=classification" in _refused({"distill": {"terms": [{"name": "cwd"}]}})
    assert "segmentation source" in _refused({}, "data.source=seg-shapes")
    assert "student.model='seg:lraspp_mobilenet_v3_small'" in _refused({}, "student.model=seg:lraspp_mobilenet_v3_small")


def test_segmentation_refuses_what_it_cannot_do_yet():
    assert "teacher.model='cifar:resnet20' does not fit task=segmentation" in _refused({**SEG, "teacher": {}})
    assert "data.source='digits'" in _refused({**SEG, "data": {"source": "digits"}})
    assert "segmentation.num_classes is required" in _refused(SEG, "data.source=seg-masks", "data.root=.")
    assert "stage 'finetune' is not available for task=segmentation" in _refused(SEG, "compress.stages=[{name: finetune}]")
    assert "distill.scheme" in _refused(SEG, "distill.scheme=online")
    assert "seg:lraspp_mobilenet_v3_small@9" in _refused(SEG, "student.model=seg:lraspp_mobilenet_v3_small@9")


def test_checkpoint_commands_refuse_tasks_without_a_chain(tmp_path):
    assert task_chain({"model": "cifar:resnet8"}, "compress") is None
    assert task_chain({"task": "detection"}, "compress") is not None
    with pytest.raises(UserError, match="compress is not yet available for task=keypoints"):
        task_chain({"task": "keypoints"}, "compress")
    bad = tmp_path / "r.yaml"
    bad.write_text(yaml.safe_dump({**SEG, "distill": {"terms": [{"name": "dkd"}]}}))
    assert invoke("run", bad, f"output.dir={tmp_path / 'runs'}") == 2

"""`compress RUN --resume` typed without the stages the first command was given continues the folder's own plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgedistill.commands.compress import _take_plan
from edgedistill.compress.chain import PLAN, check_plan, plan
from edgedistill.errors import UserError
from edgedistill.recipe import build_recipe

STAGES = "compress.stages=[{name: prune, ratio: 0.3, lr: 0.003}, {name: export}, {name: quantize}]"


def _folder(tmp_path: Path) -> Path:
    out = tmp_path / "compress"
    out.mkdir()
    (out / PLAN).write_text(json.dumps({"stages": plan(build_recipe({}, [STAGES]))}))
    return out


def test_resume_without_stages_takes_the_folders_plan(tmp_path: Path) -> None:
    out = _folder(tmp_path)
    base: dict = {"train": {"threads": 1}}
    with pytest.raises(UserError, match="compress.stages"):  # what a user got before: the default (empty) list refused
        check_plan(out, build_recipe(dict(base), []))
    assert _take_plan(base, [], out)
    recipe = build_recipe(base, [])
    check_plan(out, recipe)  # the same chain: accepted
    assert [s.name for s in recipe.compress.stages] == ["prune", "export", "quantize"]
    assert recipe.compress.stages[0].lr == 0.003 and recipe.train.threads == 1


def test_stages_on_the_command_line_still_win_and_a_change_is_refused(tmp_path: Path) -> None:
    out = _folder(tmp_path)
    base: dict = {}
    other = "compress.stages=[{name: export}]"
    assert not _take_plan(base, [other], out) and "compress" not in base
    with pytest.raises(UserError, match="compress.stages"):
        check_plan(out, build_recipe(base, [other]))


def test_no_plan_no_change(tmp_path: Path) -> None:
    base: dict = {}
    assert not _take_plan(base, [], tmp_path) and base == {}


def test_stage_without_space_after_colon_names_the_fix() -> None:
    # `{name:export}` is YAML for {"name:export": None}: pydantic said only "Unable to extract tag"
    with pytest.raises(UserError) as e:
        build_recipe({}, ["compress.stages=[{name:export}]"])
    assert "compress.stages.0" in str(e.value) and "space after each colon" in str(e.value)
    assert "export" in str(e.value) and "Unable to extract tag" not in str(e.value)

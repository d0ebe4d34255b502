"""Checks of the teacher sections before any work: several teachers (each trained, on the data's classes), a
zero-shot teacher's folder, and what unlabeled images and function matching need."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..data.unlabeled import open_unlabeled
from ..distill import METHODS, terms_need_teacher
from ..errors import UserError
from ..models import read_meta, weights_class_count
from ..recipe import TeacherConfig

if TYPE_CHECKING:
    from ..recipe import Recipe


def _member_classes(model: str, weights: str | None) -> list[str] | None:
    """Class names a trained teacher's file records (edgedistill checkpoints), else None (unknown)."""
    path = model.partition(":")[2] if model.startswith("file:") else weights
    if not path or path == "pretrained" or not str(path).endswith(".safetensors"):
        return None
    try:
        names = read_meta(path).get("class_names")
    except UserError:
        return None
    return [str(n) for n in names] if isinstance(names, list) else None


def check_teachers(recipe: Recipe, class_names: list[str]) -> None:
    """teachers.models: exclusive with the teacher section; every member trained, on the data's classes.
    A zero-shot teacher's folder: a CLIP model with a text tower."""
    members = recipe.teachers.models
    if recipe.teacher.model.startswith("hf-clip:"):  # a folder without a text tower is the model's fault
        weights_class_count(recipe.teacher.model, None, key="teacher.model")
    if not members:
        return
    if recipe.teacher.model_dump() != TeacherConfig().model_dump():
        raise UserError("teachers.models and a changed teacher section are exclusive (the teacher section trains "
                        "or loads one teacher; teachers.models combines trained ones); allowed: leave the teacher "
                        "section at its defaults, or teachers.models=[]", key="teacher")
    for i, m in enumerate(members):
        key = f"teachers.models.{i}.weights"
        zero_shot = m.model.startswith("hf-clip:")
        if m.weights is None and not zero_shot and not m.model.startswith("file:"):
            raise UserError(f"{m.model} has no weights: the teachers of teachers.models are used as they are, "
                            "never trained here; allowed: a weights file, 'pretrained', or a file: model", key=key)
        n = weights_class_count(m.model, m.weights, key=key)
        if n is not None and n != len(class_names):
            raise UserError(f"{m.model} ({m.weights or 'checkpoint'}) has {n} classes but the data and the other "
                            f"teachers have {len(class_names)}; allowed: a teacher trained on the data's classes",
                            key=key)
        names = _member_classes(m.model, m.weights)
        if names is not None and names != list(class_names):
            only_t = [c for c in names if c not in class_names]
            only_d = [c for c in class_names if c not in names]
            why = (f"only in this teacher: {only_t}; only in the data: {only_d}" if only_t or only_d
                   else "the same classes in another order")
            raise UserError(f"teacher {i} ({m.model}) was trained on classes {names[:20]} but the data (and teacher "
                            f"0 onwards) use {class_names[:20]}: {why}; allowed: teachers trained on the same "
                            "class list", key=key)


def check_unlabeled(recipe: Recipe) -> None:
    """data.unlabeled and function matching: an offline teacher, terms that need no labels, readable images."""
    d, dc = recipe.data, recipe.distill
    if d.unlabeled is None and not dc.function_matching:
        return
    key = "data.unlabeled" if d.unlabeled is not None else "distill.function_matching"
    if dc.scheme != "offline" or not terms_need_teacher(dc):
        raise UserError(f"unlabeled images and function matching teach through a frozen teacher (got distill.scheme="
                        f"{dc.scheme}, terms {[t.name for t in dc.terms]}); allowed: scheme offline with a teacher "
                        "term such as kd", key=key)
    reading = [t.name for t in dc.terms if METHODS.get(t.name).uses_labels]
    if reading:
        raise UserError(f"terms {reading} read the labels, which unlabeled (or mixed-up) images do not have; "
                        "allowed: label-free terms such as kd, fitnet, hidden_align", key="distill.terms")
    if d.device_resident:
        raise UserError("data.device_resident=true cannot be mixed with unlabeled images or function matching; "
                        "allowed: data.device_resident=false", key="data.device_resident")
    if d.unlabeled is not None:
        open_unlabeled(d)  # no readable image, no such column: exit 2 now, not after the teacher

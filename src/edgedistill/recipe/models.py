"""Recipe sections that name models: the teacher, the student, and several teachers combined (`teachers:`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from . import loading as recipe_yaml
from ..errors import shorten
from .base import Section, check_model_spec

DEFAULT_PROMPTS = ["a photo of a {}."]


class ModelConfig(Section):
    model: str = Field(..., description="source:name, e.g. cifar:resnet8, timm:resnet18, file:run/student.safetensors")
    weights: str | None = Field(None, description="path (.safetensors/.pth), 'pretrained', or none")
    resize_head: bool = Field(True, description="replace the classifier when its class count differs from the data's")

    @field_validator("model")
    @classmethod
    def _has_prefix(cls, v: str) -> str:
        return check_model_spec(v)

    @field_validator("weights")
    @classmethod
    def _weights_exist(cls, v: str | None) -> str | None:
        if v in (None, "", "none", "None"):
            return None
        if v != "pretrained" and not recipe_yaml.exists(v):
            raise ValueError(f"weights file does not exist: {shorten(v, 300)} (allowed: a path, 'pretrained', or none)")
        return v


def _check_prompts(v: list[str]) -> list[str]:
    """Zero-shot prompt templates: each must hold `{}` where the class name goes."""
    bad = [t for t in v if "{}" not in t]
    if not v or bad:
        raise ValueError(f"every prompt template needs {{}} where the class name goes (got {bad or v!r}); "
                         'allowed: e.g. ["a photo of a {}."]')
    return v


class TeacherConfig(ModelConfig):
    model: str = Field("cifar:resnet20", description=ModelConfig.model_fields["model"].description)
    prompts: list[str] = Field(default_factory=lambda: list(DEFAULT_PROMPTS), description="zero-shot "
                               "(hf-clip:DIR) prompt templates, {} = class name; class embeddings are their mean")
    probe: bool = Field(False, description="train only the teacher's classifier, on frozen features (a linear "
                        "probe, e.g. on a self-supervised hf:DIR DINOv2 with weights: pretrained)")
    epochs: int | None = Field(None, gt=0, description="epochs to train the teacher when it has no weights")
    lr: float | None = Field(None, gt=0, description="teacher learning rate (default: train.lr)")


    @field_validator("prompts")
    @classmethod
    def _prompts(cls, v: list[str]) -> list[str]:
        return _check_prompts(v)


class StudentConfig(ModelConfig):
    model: str = Field("cifar:resnet8", description=ModelConfig.model_fields["model"].description)




class TeacherMember(ModelConfig):
    """One of several teachers: already trained (weights, file: or a zero-shot hf-clip: model), never trained here."""

    weight: float = Field(1.0, gt=0, description="weight of this teacher in the mean rule")
    prompts: list[str] = Field(default_factory=lambda: list(DEFAULT_PROMPTS), description="zero-shot prompts "
                               "(hf-clip:DIR), {} = class name")

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, v: list[str]) -> list[str]:
        return _check_prompts(v)


class TeachersConfig(Section):
    """Several teachers combined into one (used instead of the teacher section when `models` is not empty)."""

    models: list[TeacherMember] = Field(default_factory=list, description="trained teachers (model, weights, "
                                        "weight, prompts); empty: the teacher section's single teacher")
    ensemble: Literal["mean", "geometric", "confidence", "class_weights", "per_term"] = Field(
        "mean", description="mean: weighted mean of probabilities; geometric: weighted mean of logits "
        "(geometric mean of probabilities, renormalized), so a KD temperature softens it like one teacher; "
        "confidence: per image, weighted by each teacher's top probability; class_weights: per class, "
        "weighted by each teacher's recall fitted on the train split (never the reported split); per_term: "
        "each distill.terms entry names its teacher (teacher: i)")
    fit_samples: int = Field(2000, gt=0, description="class_weights: train images (eval preprocessing) the "
                             "per-class weights are fitted on")

    @field_validator("models")
    @classmethod
    def _two_or_more(cls, v: list[TeacherMember]) -> list[TeacherMember]:
        if len(v) == 1:
            raise ValueError("one teacher goes in the teacher section; teachers.models needs 2 or more")
        return v

"""Building the run's teacher: the teacher section's model, several combined, or zero-shot (hf-clip:); the probe's
frozen features, class weights fitted on the train split, and one teacher-output cache per member."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from ..data import make_loader
from ..data.build import first_samples
from ..data.dataset import TransformedDataset
from ..data.transforms import build_transform
from ..distill.ensemble import Ensemble, EnsembleCache, fit_class_weights, member_taps
from ..engine import distributed as ddp
from ..errors import UserError
from ..evaluate import predict
from ..models import create_model
from ..models.heads import head_name
from .output_cache import open_or_build

if TYPE_CHECKING:
    from ..recipe import DataConfig, Recipe
    from ..run.context import Context


def _zero_shot_ready(model: nn.Module, class_names: list[str], prompts: list[str], d: DataConfig) -> nn.Module:
    if hasattr(model, "set_classes"):  # hf-clip: class embeddings from the prompts, the data's normalization
        model.set_classes(class_names, prompts, d.mean, d.std)
    return model


def build_teacher(recipe: Recipe, class_names: list[str]) -> nn.Module:
    """The teacher section's model, or the teachers.models members combined by teachers.ensemble."""
    n, d = len(class_names), recipe.data
    if not recipe.teachers.models:
        tc = recipe.teacher
        model = create_model(tc.model, n, weights=tc.weights, resize_head=tc.resize_head, key="teacher.model")
        return _zero_shot_ready(model, class_names, tc.prompts, d)
    members = []
    for i, m in enumerate(recipe.teachers.models):
        key = f"teachers.models.{i}.weights"
        try:
            model = create_model(m.model, n, weights=m.weights, resize_head=False, key=key)
        except UserError as e:
            raise UserError(f"teacher {i} ({m.model}) cannot be loaded: {e}", key=key) from None
        except Exception as e:  # noqa: BLE001  (a source's own failure: name the member, not a traceback)
            raise UserError(f"teacher {i} ({m.model}, {m.weights}) cannot be loaded: {type(e).__name__}: {e}",
                            key=key) from None
        members.append(_zero_shot_ready(model, class_names, m.prompts, d))
    return Ensemble(members, recipe.teachers.ensemble, [m.weight for m in recipe.teachers.models])


def freeze_all_but_head(model: nn.Module) -> None:
    """teacher.probe: a linear probe, the features frozen (e.g. a self-supervised DINOv2 backbone)."""
    head = head_name(model)
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(f"{head}."))


def fit_ensemble(ctx: Context, teacher: nn.Module) -> None:
    """class_weights rule: each member's per-class recall on train-split images (eval preprocessing, at most
    teachers.fit_samples of them); the split accuracy is reported on is never used."""
    if not isinstance(teacher, Ensemble) or teacher.rule != "class_weights":
        return
    d = ctx.recipe.data
    ds = TransformedDataset(first_samples(ctx.data.train.base, ctx.recipe.teachers.fit_samples, d.split_seed),
                            build_transform(d, train=False))
    loader = make_loader(ds, 2 * ctx.recipe.train.batch_size, train=False, workers=d.workers)
    outs = [predict(m, loader, ctx.device) for m in teacher.members]
    teacher.class_weights = fit_class_weights([lg for lg, _ in outs], outs[0][1], ctx.data.num_classes)
    ctx.console.print(f"[cyan]teachers[/]: per-class weights fitted on {len(ds)} train images")


def teacher_rows(recipe: Recipe, teacher: nn.Module) -> dict[str, tuple[str, nn.Module]]:
    """What evaluate reports: the teacher, or the combined teacher plus each member as teacher_i."""
    if not isinstance(teacher, Ensemble):
        return {"teacher": (recipe.teacher.model, teacher)}
    rows = {"teacher": (f"ensemble:{teacher.rule}({len(teacher.members)})", teacher)}
    rows.update({f"teacher_{i}": (m.model, teacher.members[i]) for i, m in enumerate(recipe.teachers.models)})
    return rows


def _one_cache(ctx: Context, teacher: nn.Module, spec: str, taps: list[str], epochs: int) -> Any:
    r, d = ctx.recipe, ctx.recipe.data
    return open_or_build(
        teacher, spec, ctx.data.train, data_cfg=d.model_dump(mode="json", exclude={"workers", "unlabeled"}),
        seed=r.train.seed, epochs=epochs, augmenting=d.augment != "none", taps=taps, cache_dir=r.distill.cache_dir,
        dtype=r.distill.cache_dtype, max_gb=r.distill.cache_max_gb, device=ctx.device,
        batch_size=2 * r.train.batch_size, workers=d.workers, rank=ddp.rank(), world=ddp.world_size(),
        barrier=ddp.barrier, log=ctx.console.print)


def teacher_cache(ctx: Context, teacher: nn.Module, taps: list[str], epochs: int) -> Any:
    """The teacher-output cache for the train split (one per member of several teachers), or None (live)."""
    if not isinstance(teacher, Ensemble):
        return _one_cache(ctx, teacher, ctx.recipe.teacher.model, taps, epochs)
    specs = [m.model for m in ctx.recipe.teachers.models]
    caches = [_one_cache(ctx, m, specs[i], member_taps(taps, i), epochs) for i, m in enumerate(teacher.members)]
    return None if any(c is None for c in caches) else EnsembleCache(teacher, caches)

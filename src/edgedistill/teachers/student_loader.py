"""The distilled student's train loader when it learns from unlabeled images or function matching."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch.utils.data import DataLoader

from ..data import make_loader
from ..data.dataset import TransformedDataset
from ..data.unlabeled import MixedLoader, strong_transform, unlabeled_loader
from ..engine import distributed as ddp

if TYPE_CHECKING:
    from ..recipe import Recipe
    from ..run.context import Context


def mixes_unlabeled(recipe: Recipe, stage: str) -> bool:
    """The distilled student's stage learns from unlabeled images or function matching; other stages do not."""
    return stage == "student" and (recipe.data.unlabeled is not None or recipe.distill.function_matching)


def student_loader(ctx: Context, labelled: Any) -> DataLoader | MixedLoader:
    """The labelled train loader plus unlabeled images; function matching: strong views, mixup, no labels."""
    r, d = ctx.recipe, ctx.recipe.data
    fm = r.distill.function_matching
    batch = r.train.batch_size // ddp.world_size()
    if fm:
        strong = TransformedDataset(ctx.data.train.base, strong_transform(d))
        labelled = make_loader(strong, batch, train=True, workers=d.workers, seed=r.train.seed,
                               device_type=ctx.device.type, num_replicas=ddp.world_size(), rank=ddp.rank())
    extra = unlabeled_loader(d, batch, r.train.seed + 1, fm, ctx.data.train.transform) \
        if d.unlabeled is not None else None
    if r.distill.teacher_cache:
        ctx.console.print("[yellow]teacher cache off for the student: unlabeled and function-matching views are "
                          "new every step; the teacher runs live on exactly what the student sees[/]")
    return MixedLoader(labelled, extra, mixup=fm)

"""Teachers beyond one labelled classifier: several combined, zero-shot (hf-clip:), and unlabeled images.

Pipeline-level glue: checks before any work, building the (combined) teacher, fitting class weights on the
train split, one teacher-output cache per member, and the student's loader with unlabeled images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn
from torch.utils.data import DataLoader

from .data import make_loader
from .data.build import _first
from .data.dataset import TransformedDataset
from .data.teacher_cache import open_or_build
from .data.transforms import build_transform
from .data.unlabeled import MixedLoader, open_unlabeled, strong_transform, unlabeled_loader
from .distill import METHODS, terms_need_teacher
from .distill.ensemble import Ensemble, EnsembleCache, fit_class_weights, member_taps
from .engine import distributed as ddp
from .errors import UserError
from .evaluate import predict
from .models import create_model, read_meta, weights_class_count
from .models.heads import head_name
from .recipe import TeacherConfig

if TYPE_CHECKING:
    from .pipeline import Context
    from .recipe import DataConfig, Recipe


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


def needs_training(recipe: Recipe, teacher: nn.Module) -> bool:
    """A single teacher without weights is trained, and a probed one (its head); members and zero-shot teachers
    are used as they are."""
    tc = recipe.teacher
    if isinstance(teacher, Ensemble) or getattr(teacher, "zero_shot", False):
        return False
    if tc.probe:
        freeze_all_but_head(teacher)
        return True
    return tc.weights is None and not tc.model.startswith("file:")


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
    ds = TransformedDataset(_first(ctx.data.train.base, ctx.recipe.teachers.fit_samples, d.split_seed),
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

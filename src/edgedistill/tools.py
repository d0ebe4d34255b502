"""What the `eval`, `profile` and `list` commands do, kept out of the CLI so it holds no logic."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .atomic import atomic_write_text
from .errors import UserError
from .writable import file_problem


def resolve_checkpoint(path: str) -> Path:
    """A run folder means its distilled student; a file must be a model written by edgedistill."""
    p = Path(path).expanduser()
    if p.is_dir():
        primary = _primary(p)
        for cand in (p / primary / "model.safetensors", p / "model.safetensors"):
            if cand.exists():
                return cand
        raise UserError(f"{p} is a folder without {primary}/model.safetensors (not an edgedistill run folder)")
    if not p.exists():
        raise UserError(f"no such file or folder: {p}")
    if p.suffix != ".safetensors":
        raise UserError(f"{p}: expected a .safetensors model written by edgedistill or a run folder")
    return p


def _primary(run_dir: Path) -> str:
    """The run's student: `student`, or the model metrics.json names (peer1 online, genN born-again)."""
    try:
        return str(json.loads((run_dir / "metrics.json").read_text()).get("primary", "student"))
    except (OSError, ValueError):
        return "student"


def evaluate_checkpoint(path: str, overrides: list[str], split: str, json_out: Path | None,
                        console: Console) -> dict:
    from .data import build_data, make_loader
    from .evaluate import classification_metrics, predict
    from .models import load_model, read_meta
    from .recipe import build_recipe

    if json_out is not None and (problem := file_problem(json_out)):
        raise UserError(f"cannot write the metrics to {json_out}: {problem}; allowed: a writable file path",
                        key="--json")  # checked first: metrics are never computed only to be lost
    ckpt = resolve_checkpoint(path)
    meta = read_meta(ckpt)
    bad = [o for o in overrides if not o.startswith("data.")]
    if bad:
        raise UserError(f"eval takes only data.key=value overrides, got {', '.join(bad)}")
    recipe = build_recipe({"data": meta.get("data", {}), "eval": {"split": split}}, overrides)
    data = build_data(recipe.data)
    if data.class_names != meta["class_names"]:
        raise UserError(f"the data's classes {data.class_names[:5]}… differ from the checkpoint's "
                        f"{meta['class_names'][:5]}…", key="data.root")
    model, _ = load_model(ckpt)
    loader = make_loader(data.held_out(split), 256, train=False, workers=recipe.data.workers)
    logits, labels = predict(model, loader)
    metrics = classification_metrics(logits, labels, data.num_classes)
    table = Table(title=f"{ckpt} — {split} split, {len(labels)} images")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)
    if json_out:
        atomic_write_text(json_out, json.dumps({"checkpoint": str(ckpt), "split": split, **metrics}, indent=2))
    return metrics


def profile_checkpoint(spec: str, image_size: int | None, threads: int | None, runs: int, batch_size: int,
                       num_classes: int, console: Console) -> dict:
    from .deploy import profile_model
    from .models import create_model, load_model

    _check_profile_args(image_size, threads, runs, batch_size, num_classes)
    if ":" in spec and not Path(spec).exists():
        model = create_model(spec, num_classes, key="model")
        size = image_size or 224
    else:
        model, meta = load_model(resolve_checkpoint(spec))
        size = image_size or int(meta.get("image_size", 224))
    result = profile_model(model, (batch_size, 3, size, size), runs=runs, threads=threads)
    table = Table(title=f"{spec} — input {batch_size}×3×{size}×{size}, CPU")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k, v in result.items():
        table.add_row(k, "not measurable here" if v is None else f"{v:,.3f}" if isinstance(v, float) else f"{v:,}")
    console.print(table)
    return result


PROFILE_LIMITS = {"--image-size": (8, 4096), "--threads": (1, 1024), "--runs": (1, 100_000),
                  "--batch-size": (1, 4096), "--num-classes": (1, 100_000)}


def _check_profile_args(image_size: int | None, threads: int | None, runs: int, batch_size: int,
                        num_classes: int) -> None:
    """Refuse, before building anything, values that would crash, hang or silently mean something else."""
    given = {"--image-size": image_size, "--threads": threads, "--runs": runs, "--batch-size": batch_size,
             "--num-classes": num_classes}
    for opt, v in given.items():
        lo, hi = PROFILE_LIMITS[opt]
        if v is not None and not lo <= v <= hi:
            raise UserError(f"{opt} {v} is out of range; allowed: {lo}..{hi:,}"
                            + (" (omit it for the checkpoint's own size)" if opt == "--image-size" else ""))


def list_registered(what: str, pattern: str | None, source: str | None, console: Console) -> None:
    if what == "data":
        from .data import DATA_SOURCES

        _table(console, "dataset sources (data.source)", ["name", "description"],
               [[e.name, e.meta.get("description", "")] for e in DATA_SOURCES])
    elif what == "methods":
        from .distill import METHODS

        rows = []
        for e in METHODS:
            params = ", ".join(f"{k}={f.default}" for k, f in e.obj.Params.model_fields.items())
            rows.append([e.name, e.meta.get("family", ""), params or "–", e.meta.get("paper", "")])
        _table(console, "distillation methods (distill.terms[].name)", ["name", "family", "parameters", "paper"], rows)
    else:
        from .models import MODEL_SOURCES

        if source is not None:
            MODEL_SOURCES.get(source, key="--source")
        rows = []
        for e in MODEL_SOURCES:
            if source and e.name != source:
                continue
            names = e.obj.names()
            if pattern:
                names = fnmatch.filter(names, pattern)
            shown = ", ".join(names[:40]) + (f", … ({len(names)} in all)" if len(names) > 40 else "")
            rows.append([f"{e.name}:", e.meta.get("description", ""), shown or "–"])
        _table(console, "model sources (teacher.model / student.model = SOURCE:NAME)",
               ["source", "description", "names"], rows)
        if source in (None, "arch"):
            _list_families(pattern, console)


def _list_families(pattern: str | None, console: Console) -> None:
    """The `arch:` families with each knob's allowed values and default, so a spec can be written by hand."""
    from .models import FAMILIES, family_spec

    rows = []
    for e in FAMILIES:
        if pattern and not fnmatch.fnmatch(e.name, pattern):
            continue
        fam = e.obj
        knobs = "\n".join(f"{k}: {kn.allowed()} (default {kn.format(kn.default)}); {kn.help}"
                          for k, kn in fam.knobs.items())
        rows.append([e.name, f"{fam.description}; defaults = {fam.reference}", knobs, family_spec(e.name, {})])
    if rows:
        _table(console, "arch families (student.model = arch:FAMILY,key=value,…; omitted knobs take defaults)",
               ["family", "description", "knobs", "default spec"], rows, fold=True)


def _table(console: Console, title: str, header: list[str], rows: list[list[str]], fold: bool = False) -> None:
    table = Table(title=title, show_lines=True)
    for h in header:
        table.add_column(h, overflow="fold" if fold else "ellipsis")
    for r in rows:
        table.add_row(*(escape(c) for c in r))
    console.print(table)

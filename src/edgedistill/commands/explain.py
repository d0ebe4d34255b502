"""`edgedistill explain RUN_DIR`: distill the run's teacher into an approximation tree and measure its stability.

The tree's features are the first principal components of the teacher's penultimate embedding (the input of its
classifier head) on the train images; pseudo-samples are drawn from a diagonal Gaussian mixture of those
components and labelled by the teacher's own head applied to their PCA reconstruction, so the teacher, not the
dataset's labels, decides every pseudo-sample's class.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from ..analysis.audit import check_device, load_teacher
from ..analysis.embedding import classifier_head, embed, fit_features
from ..analysis.surrogate import BoxMixture, TreeSettings
from ..analysis.surrogate_stability import Problem, repeated_fits
from ..atomic import atomic_write_text
from ..data.build import first_samples
from ..errors import UserError
from ..recipe import build_recipe
from ..recipe.loading import check_read_keys


READ_KEYS = ("explain.", "data.", "eval.split", "train.batch_size")  # what explain reads of the recipe besides the teacher


def _check(run_dir: Path, overrides: list[str], options: dict[str, int | None], device: str) -> list[str]:
    """--depth/--samples/--repeats become explain.* overrides, so one validator names the key."""
    check_device(device)
    check_read_keys(overrides, READ_KEYS, "explain reads a finished run's teacher")
    over = list(overrides) + [f"explain.{k}={v}" for k, v in options.items() if v is not None]
    build_recipe({}, [o for o in over if o.startswith("explain.")])  # bad explain.* values: exit 2 before reading
    return over


def run_explain(run_dir: Path, overrides: list[str] | None = None, *, depth: int | None = None,
                samples: int | None = None, repeats: int | None = None, device: str = "cpu",
                console: Console | None = None) -> dict[str, Any]:
    """Fit approximation trees and CART R times; write RUN_DIR/explain/{explain.json,tree.png,report.md,.html}."""
    from ..data import TransformedDataset, build_data
    from ..engine import resolve_device
    from ..report.explain import print_explain, write_explain_report

    console = console or Console()
    over = _check(run_dir, overrides or [], {"depth": depth, "samples": samples, "repeats": repeats}, device)
    run_dir, recipe, metrics, teacher = load_teacher(run_dir, over, needs="explain")
    cfg, class_names = recipe.explain, list(metrics["class_names"])
    head_name, head = classifier_head(teacher, len(class_names))
    data = build_data(recipe.data)
    train = first_samples(TransformedDataset(data.train.base, data.val.transform), cfg.max_images, cfg.seed)
    limit = min(head.in_features, len(train) - 1)
    if cfg.components > limit:
        raise UserError(f"{cfg.components} components; allowed: 2 to {limit} (the teacher's embedding has "
                        f"{head.in_features} dimensions, {len(train)} train images)", key="explain.components")
    split = recipe.eval.split
    console.print(f"explaining the teacher of [bold]{run_dir}[/]: {len(train)} train images, {cfg.repeats} fits "
                  f"of depth {cfg.depth}")
    dev = resolve_device(device)
    batch = recipe.train.batch_size
    e_train, l_train = embed(teacher, head, train, batch, dev)
    e_val, l_val = embed(teacher, head, data.held_out(split), batch, dev)
    feats = fit_features(e_train, head, cfg.components, cfg.seed)
    z_train, z_val = feats.pca.transform(e_train), feats.pca.transform(e_val)
    mixture = BoxMixture.fit(z_train, min(cfg.mixture, len(z_train)), cfg.seed)
    problem = Problem(z_train, l_train.argmax(1), z_val, l_val.argmax(1), mixture, feats.label, len(class_names))
    settings = TreeSettings(cfg.depth, cfg.batch, cfg.samples, cfg.alpha)
    tree, stability = repeated_fits(problem, settings, cfg.repeats, cfg.fresh, cfg.seed)
    explain = {
        "run": str(run_dir), "teacher": recipe.teacher.model, "split": split, "settings": cfg.model_dump(),
        "n_train": len(z_train), "n_held_out": len(z_val), "classes": class_names,
        "features": {"embedding": f"input of {head_name}", "names": feats.names(class_names),
                     "explained_variance": feats.pca.explained_variance_ratio_.tolist(),
                     "reconstruction_agreement": 100.0 * float((feats.label(z_val) == problem.y_val).mean())},
        "tree": tree.to_dict(), "stability": stability,
    }
    folder = run_dir / "explain"
    atomic_write_text(folder / "explain.json", json.dumps(explain, indent=2))
    md = write_explain_report(folder, explain)
    print_explain(explain, console)
    console.print(f"\nreport: [bold]{md.with_suffix('.html')}[/]")
    return explain

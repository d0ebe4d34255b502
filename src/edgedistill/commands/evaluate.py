"""`edgedistill eval`: a checkpoint's metrics on its held-out split."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..atomic import atomic_write_text
from ..errors import UserError
from ..output_folder import file_problem
from ..run.reader import resolve_checkpoint


def evaluate_checkpoint(path: str, overrides: list[str], split: str, json_out: Path | None,
                        console: Console) -> dict:
    from ..data import build_data, make_loader
    from ..evaluate import classification_metrics, predict
    from ..models import load_model, read_meta
    from ..recipe import build_recipe
    from ..recipe.loading import check_read_keys
    from ..tasks import task_chain

    if json_out is not None and (problem := file_problem(json_out)):
        raise UserError(f"cannot write the metrics to {json_out}: {problem}; allowed: a writable file path",
                        key="--json")  # checked first: metrics are never computed only to be lost
    check_read_keys(overrides, ("data.",), "eval reads the model file and its data")
    ckpt = resolve_checkpoint(path)
    meta = read_meta(ckpt)
    chain = task_chain(meta, "eval")
    if chain is not None:  # segmentation: mIoU on the masks (tasks/)
        r = chain.recipe({"data": meta.get("data", {}), "eval": {"split": split}}, overrides, meta)
        return chain.evaluate(ckpt, meta, r, split, json_out, console)
    recipe = build_recipe({"data": meta.get("data", {}), "eval": {"split": split}}, overrides)
    data = build_data(recipe.data)
    if data.class_names != meta["class_names"]:
        raise UserError(f"the data's classes {data.class_names[:5]}… differ from the checkpoint's "
                        f"{meta['class_names'][:5]}…", key="data.root")
    model, _ = load_model(ckpt)
    loader = make_loader(data.held_out(split), 256, train=False, workers=recipe.data.workers)
    logits, labels = predict(model, loader)
    metrics = classification_metrics(logits, labels, data.num_classes)
    console.print(f"{ckpt} — {split} split, {len(labels)} images",
                  markup=False, highlight=False)  # a line: a title would wrap to the narrow table
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)
    if json_out:
        atomic_write_text(json_out, json.dumps({"checkpoint": str(ckpt), "split": split, **metrics}, indent=2))
    return metrics

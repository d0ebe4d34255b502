"""The approximation tree's drawing (tree.png), its stability table and explain/report.md + report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from ..atomic import atomic_path, atomic_write_text
from .charts import plt
from .html import write_html
from .tables import markdown_table, rich_table

METHOD_LABELS = {"approximation_tree": "approximation tree", "cart_real": "CART, real images",
                 "cart_pseudo": "CART, pseudo-samples"}


def _layout(node: dict[str, Any], pos: dict[int, tuple[float, float]], nxt: list[int]) -> float:
    """In-order x positions: leaves one apart, a parent midway between its children; keyed by id(node)."""
    if "feature" not in node or node.get("left") is None:
        x = float(nxt[0])
        nxt[0] += 1
    else:
        x = (_layout(node["left"], pos, nxt) + _layout(node["right"], pos, nxt)) / 2
    pos[id(node)] = (x, -float(node["depth"]))
    return x


def _p(p: float) -> str:
    return "p<1e-4" if p < 1e-4 else f"p={p:.4f}"


def draw_tree(tree: dict[str, Any], features: list[str], classes: list[str], path: Path) -> None:
    """Boxes for splits (feature ≤ threshold, p-value, pseudo-samples used, significance) and leaves (class)."""
    pos: dict[int, tuple[float, float]] = {}
    leaves = [0]
    _layout(tree, pos, leaves)
    depth = max(-y for _, y in pos.values())
    fig, ax = plt.subplots(figsize=(max(6.0, 1.9 * leaves[0]), 1.0 + 1.5 * (depth + 1)))
    stack = [tree]
    while stack:
        node = stack.pop()
        x, y = pos[id(node)]
        n = node["n_samples"]
        if "feature" in node and node.get("left") is not None:
            sig = "" if node["significant"] else " (not significant)"
            text = f"{features[node['feature']]}\n≤ {node['threshold']:.3g}\n{_p(node['p_value'])}{sig}\nn={n:,}"
            color = "#dbe9f6" if node["significant"] else "#fbe3c8"
            for child, edge in ((node["left"], "≤"), (node["right"], ">")):
                cx, cy = pos[id(child)]
                ax.plot([x, cx], [y, cy], color="#888888", lw=1, zorder=1)
                ax.text((x + cx) / 2, (y + cy) / 2, edge, fontsize=8, ha="center", va="center", color="#555555")
                stack.append(child)
        else:
            share = node["counts"][node["label"]] / max(1, sum(node["counts"]))
            text = f"{classes[node['label']]}\n{100 * share:.0f}% of n={n:,}"
            color = "#e3f2dc"
        ax.text(x, y, text, ha="center", va="center", fontsize=8, zorder=2,
                bbox={"boxstyle": "round,pad=0.4", "fc": color, "ec": "#666666"})
    ax.set_xlim(-0.7, leaves[0] - 0.3)
    ax.set_ylim(-depth - 0.6, 0.6)
    ax.axis("off")
    ax.set_title("Approximation tree of the teacher (blue: significant split; orange: budget spent)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def stability_rows(explain: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per method: fidelity (fresh pseudo-samples, real held-out images), samples, structure stability."""
    r = explain["settings"]["repeats"]
    head = ["method", "fidelity fresh %", f"fidelity {explain['split']} %", "samples/fit", f"roots (of {r})",
            "root H bits", f"top-2 (of {r})", "top-2 H bits", "commonest top-2"]
    rows = []
    for m, s in explain["stability"].items():
        rows.append([METHOD_LABELS.get(m, m), f"{s['fresh']['mean']:.2f} ± {s['fresh']['std']:.2f}",
                     f"{s['real']['mean']:.2f} ± {s['real']['std']:.2f}", f"{s['n_samples']['mean']:,.0f}",
                     str(s["root"]["distinct"]), f"{s['root']['entropy_bits']:.3f}", str(s["top2"]["distinct"]),
                     f"{s['top2']['entropy_bits']:.3f}",
                     f"`{s['top2']['most_common']}` ({100 * s['top2']['most_common_share']:.0f}%)"])
    return head, rows


def write_explain_report(folder: Path, explain: dict[str, Any]) -> Path:
    """explain/tree.png, explain/report.md and its self-contained report.html."""
    feats = explain["features"]
    draw_tree(explain["tree"], feats["names"], explain["classes"], folder / "tree.png")
    cfg = explain["settings"]
    at = explain["stability"]["approximation_tree"]
    names = "; ".join(f"f{j} = {n} ({100 * v:.1f}% of variance)"
                      for j, (n, v) in enumerate(zip(feats["names"], feats["explained_variance"])))
    lines = [
        "# Approximation tree of the teacher",
        "",
        (f"Run `{explain['run']}`: teacher `{explain['teacher']}` distilled into a depth-{cfg['depth']} tree over "
         f"the first {cfg['components']} principal components of its penultimate embedding "
         f"({feats['embedding']}; {explain['n_train']} train images). Pseudo-samples come from a "
         f"{cfg['mixture']}-component diagonal Gaussian mixture of those components and are labelled by the "
         "teacher's head on their reconstruction. Each split is tested against the best split of every other "
         f"feature (delta-method z-test of the Gini-gain difference); a node doubles its pseudo-samples from "
         f"{cfg['batch']:,} until the split is significant at α={cfg['alpha']} (shared over its looks) or "
         f"{cfg['samples']:,} are spent."),
        "",
        (f"The teacher's head on the PCA reconstruction agrees with the teacher on "
         f"{feats['reconstruction_agreement']:.1f}% of the {explain['n_held_out']} {explain['split']} images: "
         "the ceiling of any tree on these features."),
        "",
        "![The approximation tree](tree.png)",
        "",
        f"Features: {names}.",
        "",
        f"## Stability over {cfg['repeats']} fits",
        "",
        ("Fidelity is agreement with the teacher's class (mean ± std over the fits) on fresh pseudo-samples and on "
         "the real held-out images. A structure is the split features of the top levels (`f2(f0,-)`: root on f2, its "
         "left child on f0, its right child a leaf); *roots* and *top-2* count the distinct structures over the "
         "fits, *H* is the entropy of their frequencies (0 bits: every fit agreed). "
         "CART (scikit-learn, same depth) is fitted on as many samples as the approximation tree drew: a bootstrap "
         "of the real train images labelled by the teacher, and fresh pseudo-samples."),
        "",
        markdown_table(*stability_rows(explain)),
        "",
        f"Significant splits of the approximation trees: {at['significant_splits']} of {at['splits']}.",
        "",
    ]
    md = folder / "report.md"
    atomic_write_text(md, "\n".join(lines))
    write_html(md, title="edgedistill approximation tree")
    return md


def print_explain(explain: dict[str, Any], console: Console) -> None:
    head, rows = stability_rows(explain)
    console.print(rich_table(f"Approximation tree vs CART: {explain['settings']['repeats']} fits, depth "
                             f"{explain['settings']['depth']}", head, rows))

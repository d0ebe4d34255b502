"""The metric surface of a sensitivity sweep: a line with 95% intervals (one key) or a heat map (two keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .charts import plt


def _order(values: list[Any]) -> list[Any]:
    try:
        return sorted(set(values))
    except TypeError:  # mixed types: keep first-seen order
        return list(dict.fromkeys(values))


def sweep_chart(res: dict[str, Any], path: Path) -> bool:
    """Mean metric per grid point with its t interval; False when the sweep has more than two keys."""
    sw = res.get("sweep")
    if not sw or len(sw["keys"]) > 2:
        return False
    keys, pts, arms, m = sw["keys"], sw["points"], res["arms"], res["metric"]
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(keys) == 1:
        xs = _order([p[keys[0]] for p in pts.values()])
        by = {p[keys[0]]: arms[a] for a, p in pts.items()}
        mean = [by[x]["mean"] for x in xs]
        lo = [by[x]["mean"] - (by[x]["t_ci"][0] if by[x]["t_ci"][0] is not None else by[x]["mean"]) for x in xs]
        hi = [(by[x]["t_ci"][1] if by[x]["t_ci"][1] is not None else by[x]["mean"]) - by[x]["mean"] for x in xs]
        pos = xs if all(isinstance(x, (int, float)) for x in xs) else list(range(len(xs)))
        ax.errorbar(pos, mean, yerr=[lo, hi], marker="o", capsize=4)
        if pos is not xs:
            ax.set_xticks(pos, [str(x) for x in xs])
        base = arms[res["baseline"]]["mean"] if res["baseline"] not in pts else None
        if base is not None:
            ax.axhline(base, color="gray", ls="--", lw=1, label=f"{res['baseline']} (baseline)")
            ax.legend()
        ax.set(xlabel=keys[0], ylabel=f"{m} (mean, 95% t interval)")
    else:
        xs, ys = _order([p[keys[0]] for p in pts.values()]), _order([p[keys[1]] for p in pts.values()])
        grid = np.full((len(ys), len(xs)), np.nan)
        for a, p in pts.items():
            grid[ys.index(p[keys[1]]), xs.index(p[keys[0]])] = arms[a]["mean"]
        im = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
        for a, p in pts.items():
            s, ci = arms[a], arms[a]["t_ci"]
            half = f"±{(ci[1] - ci[0]) / 2:.1f}" if ci[0] is not None else ""
            ax.text(xs.index(p[keys[0]]), ys.index(p[keys[1]]), f"{s['mean']:.1f}\n{half}", ha="center",
                    va="center", color="white", fontsize=8)
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set_yticks(range(len(ys)), [str(y) for y in ys])
        ax.set(xlabel=keys[0], ylabel=keys[1])
        fig.colorbar(im, ax=ax, label=f"{m} (mean; ± half 95% t interval)")
    ax.set_title(f"Sensitivity of {m}, {len(res['units'])} runs per point", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True

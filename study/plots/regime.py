"""Regime heatmaps: BD-rate of personalized over data per client × heterogeneity."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm

from study.regime import cell_grid

UNITS = {"vectors": "training vectors per client", "images": "training images per client"}


def plot_regime(rows: list[dict[str, Any]], path: Path, kind: str = "vectors") -> None:
    """One heatmap per baseline (columns) and number of clients (rows of panels): colour is
    the mean-curve BD-rate (blue: personalized saves rate), each cell says the value ± its
    spread over seeds and the range over clients, and the black line is the zero contour,
    drawn only between cells that have a value."""
    anchors = list(dict.fromkeys(r["anchor"] for r in rows))
    counts = sorted({int(r["num_clients"]) for r in rows})
    fig, axes = plt.subplots(
        len(counts), len(anchors), figsize=(5.2 * len(anchors), 3.8 * len(counts)), squeeze=False
    )
    finite = [abs(r["bd_rate_percent"]) for r in rows if math.isfinite(r["bd_rate_percent"])]
    reach = max([*finite, 1.0])
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-reach, vmax=reach)
    for i, count in enumerate(counts):
        for j, anchor in enumerate(anchors):
            ax = axes[i][j]
            cells = [r for r in rows if r["anchor"] == anchor and int(r["num_clients"]) == count]
            if not cells:
                ax.set_axis_off()
                continue
            sizes, levels, grid = cell_grid(cells)
            values = np.array(
                [[math.nan if c is None else c["bd_rate_percent"] for c in line] for line in grid]
            )
            image = ax.imshow(
                np.ma.masked_invalid(values),
                cmap="RdBu_r",
                norm=norm,
                origin="lower",
                aspect="auto",
            )
            if min(values.shape) >= 2 and np.isfinite(values).sum() >= 4:
                # masked, not filled: cells not run (or without a value) draw no line, and
                # neither does a square of cells missing one corner (corner_mask off)
                ax.contour(
                    np.ma.masked_invalid(values),
                    levels=[0.0],
                    colors="k",
                    linewidths=1.5,
                    corner_mask=False,
                )
            for y, line in enumerate(grid):
                for x, cell in enumerate(line):
                    if cell is not None:
                        value = cell["bd_rate_percent"]
                        dark = math.isfinite(value) and abs(value) > 0.6 * reach
                        color = "white" if dark else "black"
                        ax.text(
                            x, y, _label(cell), ha="center", va="center", fontsize=7, color=color
                        )
            ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
            if all(r.get("generated", True) for r in cells):
                ax.set_yticks(range(len(levels)), [f"{h:g}" for h in levels])
                ax.set_ylabel("heterogeneity h (0: identical clients)")
            else:  # image folders: the clients differ by their own domains
                ax.set_yticks(range(len(levels)), ["real domains"] * len(levels))
                ax.set_ylabel("heterogeneity")
            ax.set_xlabel(UNITS[kind])
            ax.set_title(f"personalized vs {anchor}, {count} clients", fontsize=10)
            fig.colorbar(image, ax=ax, label="BD-rate (%), < 0: personalized saves rate")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label(cell: dict[str, Any]) -> str:
    value, std = cell["bd_rate_percent"], cell["std_over_seeds"]
    if not math.isfinite(value):
        return cell["status"].replace(" ", "\n", 1)
    text = f"{value:+.1f}" + (f"±{std:.1f}" if math.isfinite(std) else "")
    if math.isfinite(cell["client_min"]):
        text += f"\n[{cell['client_min']:+.0f}, {cell['client_max']:+.0f}]"
    if cell["checks"] and cell["checks_passed"] < cell["checks"]:
        text += "\nnot converged"
    return text

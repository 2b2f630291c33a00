"""Rate–distortion panels: one per client plus the mean, classic codecs and bounds."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt

from study.bd_rate import METHODS, curve
from study.plots import AXES, COLORS, save_figure

MAX_COLUMNS = 5  # wider figures shrink every panel on a page


def plot_rd(
    rows,
    classic,
    bounds,
    clients: list[str],
    path: Path,
    kind: str = "images",
    names: dict[str, str] | None = None,
) -> None:
    """One panel per client (titled by ``names``, e.g. the image domain) plus the mean.
    The axes fit the learned codecs' points; JPEG/WebP and the bound are clipped to them."""
    panels = [*clients, "mean"]
    nrows, ncols = panel_grid(len(panels))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3.6 * nrows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, client in zip(axes.flat, panels, strict=False):
        learned = [(r["real_bpp"], r["psnr"]) for r in rows if r["client"] == client]
        for method in METHODS:
            rates, psnrs, spread = curve(rows, method, client)
            if rates:
                ax.errorbar(
                    rates,
                    psnrs,
                    yerr=spread,
                    marker="o",
                    label=method,
                    color=COLORS[method],
                    capsize=3,
                )
        for codec in ("JPEG", "WebP"):
            points = sorted(
                (r["real_bpp"], r["psnr"])
                for r in classic
                if r["client"] == client and r["method"] == codec
            )
            if points:
                ax.plot(*zip(*points, strict=True), "--", color=COLORS[codec], label=codec, lw=1)
        bound = [(r["rate"], r["psnr"]) for r in bounds if r["client"] == client]
        if bound:
            ax.plot(*zip(*bound, strict=True), ":", color="k", lw=1.2, label="Shannon lower bound")
        weighting = "pixel-weighted" if kind == "images" else "over clients"
        title = (names or {}).get(client, f"client {client}")
        ax.set_title(title if client != "mean" else f"mean ({weighting})")
        _fit(ax, learned)
        ax.set_xlabel(AXES[kind][0])
        ax.set_ylabel(AXES[kind][1])
        ax.grid(alpha=0.3)
    save_figure(fig, axes, path)


def panel_grid(panels: int, max_columns: int = MAX_COLUMNS) -> tuple[int, int]:
    """Rows and columns for ``panels`` panels: as few rows as ``max_columns`` allows, filled
    evenly (6 panels: 2 rows of 3; 9: 2 rows of 5)."""
    nrows = math.ceil(panels / max_columns)
    return nrows, math.ceil(panels / nrows)


def _fit(ax, points: list[tuple[float, float]], margin: float = 0.08) -> None:
    """Limit the axes to ``points`` (the learned codecs) with a margin, so classic codecs
    reaching 3-4 bpp do not squeeze them into a corner."""
    finite = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
    if not finite:
        return
    for values, setter in (
        (sorted(x for x, _ in finite), ax.set_xlim),
        (sorted(y for _, y in finite), ax.set_ylim),
    ):
        low, high = values[0], values[-1]
        pad = margin * (high - low) or margin * max(abs(high), 1.0)
        setter(low - pad, high + pad)

"""Rate–distortion panels: one per client plus the mean, classic codecs and bounds."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from study.bd_rate import METHODS, curve
from study.plots import AXES, COLORS, save_figure


def plot_rd(rows, classic, bounds, clients: list[str], path: Path, kind: str = "images") -> None:
    panels = [*clients, "mean"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), squeeze=False)
    for ax, client in zip(axes[0], panels, strict=True):
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
        ax.set_title(f"client {client}" if client != "mean" else f"mean ({weighting})")
        ax.set_xlabel(AXES[kind][0])
        ax.set_ylabel(AXES[kind][1])
        ax.grid(alpha=0.3)
    save_figure(fig, axes, path)

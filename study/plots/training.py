"""Train loss per round of every run."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from study.bd_rate import METHODS
from study.plots import COLORS, save_figure


def plot_training(training: list[dict[str, Any]], path: Path) -> None:
    lmbdas = sorted({r["lmbda"] for r in training})
    fig, axes = plt.subplots(
        1, max(1, len(lmbdas)), figsize=(4 * max(1, len(lmbdas)), 3.2), squeeze=False
    )
    for ax, lmbda in zip(axes[0], lmbdas, strict=False):
        for method in METHODS:
            by_round: dict[int, list[float]] = defaultdict(list)
            for r in training:
                if r["method"] == method and r["lmbda"] == lmbda:
                    by_round[r["round"]].append(r["loss"])
            if by_round:
                rounds = sorted(by_round)
                ax.plot(
                    rounds,
                    [statistics.fmean(by_round[k]) for k in rounds],
                    marker=".",
                    label=method,
                    color=COLORS[method],
                )
        ax.set_title(f"λ = {lmbda}")
        ax.set_xlabel("round")
        ax.set_ylabel("train loss (R + λ·D)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    save_figure(fig, axes, path)

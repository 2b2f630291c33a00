"""BD-rate of the mean client against the setting of a multi-setting sweep."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from study.bd_rate import BASELINES, OPTIONAL_BASELINES
from study.plots import COLORS, save_figure


def plot_gain(table: list[dict[str, Any]], path: Path) -> None:
    """Mean BD-rate over clients' mean curve (client ``mean``) of personalized against each
    baseline, one point per setting, with the spread over seeds."""
    settings = sorted({r["setting"] for r in table})
    fig, axes = plt.subplots(1, 1, figsize=(max(5, 1.6 * len(settings)), 3.6), squeeze=False)
    ax = axes[0][0]
    nan = {"bd_rate_percent": math.nan, "std_over_seeds": math.nan}
    for baseline in (*BASELINES, *OPTIONAL_BASELINES):
        if not any(r["anchor"] == baseline for r in table):
            continue
        points = [
            next(
                (
                    r
                    for r in table
                    if r["setting"] == setting
                    and r["anchor"] == baseline
                    and r["client"] == "mean"
                    and r["seed"] == "all"
                ),
                nan,  # a setting without this baseline
            )
            for setting in settings
        ]
        ax.errorbar(
            range(len(settings)),
            [p["bd_rate_percent"] for p in points],
            yerr=[0 if math.isnan(p["std_over_seeds"]) else p["std_over_seeds"] for p in points],
            marker="o",
            linestyle="none",  # settings are categories, not a continuum
            capsize=3,
            color=COLORS[baseline],
            label=f"personalized vs {baseline}",
        )
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(settings)), [s.replace(",", "\n") for s in settings], fontsize=7)
    ax.set_ylabel("BD-rate, mean client (%)\n< 0: personalized saves rate")
    ax.grid(alpha=0.3)
    save_figure(fig, axes, path)

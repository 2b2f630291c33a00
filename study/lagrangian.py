"""Matched-λ comparison of methods: the test-set rate–distortion cost ``J = R + λ·255²·MSE``.

Every method trains at a λ to minimise CompressAI's ``RateDistortionLoss`` (``bpp +
λ·255²·MSE``). At that λ, the method whose coded test set costs less has the better
operating point: its R–D curve lies below the other's supporting line of slope λ. Unlike
BD-rate, this needs no interpolation, so it still reads curves whose top has stopped gaining
quality (where BD-rate says "not monotone"). ``J`` uses the real bitstream rate and the
PSNR (peak 1) of each client, or of the pixel-weighted ``mean`` row.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

from study.bd_rate import BASELINES, OPTIONAL_BASELINES


def cost(row: dict[str, Any]) -> float:
    """``real_bpp + λ·255²·MSE`` of one result row (MSE from its PSNR, peak 1)."""
    return row["real_bpp"] + row["lmbda"] * 255**2 * 10 ** (-row["psnr"] / 10)


def lagrangian_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (setting, client, λ, seed) with personalized and a baseline: both costs and the
    relative difference (negative: personalized is better at that λ)."""
    by_point: dict[tuple, dict[str, float]] = defaultdict(dict)
    for r in results:
        key = (r.get("setting", "all"), r["client"], r["lmbda"], r["seed"])
        by_point[key][r["method"]] = cost(r)
    rows = []
    for (setting, client, lmbda, seed), costs in sorted(by_point.items(), key=str):
        for baseline in BASELINES + OPTIONAL_BASELINES:
            if "personalized" in costs and baseline in costs:
                mine, theirs = costs["personalized"], costs[baseline]
                rows.append(
                    {
                        "setting": setting,
                        "anchor": baseline,
                        "client": client,
                        "lmbda": lmbda,
                        "seed": seed,
                        "cost_personalized": mine,
                        "cost_anchor": theirs,
                        "change_percent": 100 * (mine - theirs) / theirs,
                    }
                )
    return rows


def lagrangian_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (setting, baseline, client): how often personalized costs less, and the mean
    change over λ and seeds with its spread over seeds (of each seed's mean over λ)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["setting"], r["anchor"], r["client"])].append(r)
    summary = []
    for (setting, anchor, client), group in sorted(groups.items(), key=str):
        per_seed: dict[Any, list[float]] = defaultdict(list)
        for r in group:
            per_seed[r["seed"]].append(r["change_percent"])
        seed_means = [statistics.fmean(v) for v in per_seed.values()]
        spread = statistics.pstdev(seed_means) if len(seed_means) > 1 else math.nan
        summary.append(
            {
                "setting": setting,
                "anchor": anchor,
                "client": client,
                "wins": sum(r["change_percent"] < 0 for r in group),
                "points": len(group),
                "mean_change_percent": statistics.fmean(r["change_percent"] for r in group),
                "std_over_seeds": spread,
                "seeds": len(seed_means),
            }
        )
    return summary


def format_lagrangian(summary: list[dict[str, Any]]) -> str:
    """One line per baseline for each setting's ``mean`` client."""
    lines = []
    for r in summary:
        if r["client"] == "mean":
            spread = "" if math.isnan(r["std_over_seeds"]) else f" ± {r['std_over_seeds']:.1f}"
            lines.append(
                f"R + λD at matched λ, personalized vs {r['anchor']} ({r['setting']}, mean): "
                f"{r['mean_change_percent']:+.1f}%{spread}, lower at {r['wins']} of "
                f"{r['points']} (λ, seed)"
            )
    return "\n".join(lines)

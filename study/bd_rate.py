"""Bjøntegaard delta rate (PSNR based) of ``personalized`` against each baseline, per client
and seed and over seeds, and its one-screen summary."""

from __future__ import annotations

import math
import statistics
import warnings
from collections import defaultdict
from itertools import pairwise
from typing import Any

import bjontegaard

from study.classic import codec_points

START = "base"  # rows of the shipped base a model.init=base setting started from (untrained)
METHODS = ("personalized", "fedavg", "local", "fedavg_refit", START)
# What personalized is compared against: always local and fedavg, and fedavg + refit
# (personalizing after training) and the shipped base it started from when a sweep has them.
BASELINES = ("local", "fedavg")
OPTIONAL_BASELINES = ("fedavg_refit", START)
NOT_RUN = "not run"  # no seed has runs of both personalized and the baseline
NOT_COMPARED = ("too few points", NOT_RUN)  # statuses of pairs with no BD-rate to speak of


def baselines(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """The anchors of a comparison: :data:`BASELINES` and those optional ones in ``rows``."""
    present = {r["method"] for r in rows}
    return BASELINES + tuple(b for b in OPTIONAL_BASELINES if b in present)


def curve(rows: list[dict[str, Any]], method: str, client: str, seed: Any = None):
    """(rates, psnrs) sorted by λ for one method and client (one seed, or mean over seeds)."""
    by_lmbda: dict[float, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["method"] == method and r["client"] == client and (seed is None or r["seed"] == seed):
            by_lmbda[r["lmbda"]].append(r)
    lmbdas = sorted(by_lmbda)
    rates = [statistics.fmean(r["real_bpp"] for r in by_lmbda[lm]) for lm in lmbdas]
    psnrs = [statistics.fmean(r["psnr"] for r in by_lmbda[lm]) for lm in lmbdas]
    spread = [statistics.pstdev([r["psnr"] for r in by_lmbda[lm]]) for lm in lmbdas]
    return rates, psnrs, spread


def bd_rate(
    anchor: tuple[list[float], list[float]], test: tuple[list[float], list[float]]
) -> tuple[float, str]:
    """BD-rate in % (negative: ``test`` needs less rate) and a status: ``ok``, ``too few
    points`` (under 2 λ values), ``not monotone`` (PSNR does not rise with the rate along a
    curve, so there is no R–D curve to integrate) or ``no overlap`` (PSNR ranges overlap too
    little)."""
    if min(len(anchor[0]), len(test[0])) < 2:
        return math.nan, "too few points"
    for rates, psnrs in (anchor, test):
        ordered = [q for _, q in sorted(zip(rates, psnrs, strict=True))]
        if any(a >= b for a, b in pairwise(ordered)):
            return math.nan, "not monotone"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = bjontegaard.bd_rate(
                anchor[0],
                anchor[1],
                test[0],
                test[1],
                method="akima",
                require_matching_points=False,
            )
        except (ValueError, AssertionError, ZeroDivisionError):
            return math.nan, "no overlap"
    value = float(value)
    return value, "ok" if math.isfinite(value) else "no overlap"


def seed_status(statuses: list[str], finite: int) -> str:
    """Over seeds: ``ok`` only when every seed gave a value; ``k of n seeds`` (with the
    first other reason) when only some did; the first reason when none did."""
    if finite == len(statuses):
        return "ok"
    if finite == 0:
        return statuses[0]
    other = next(s for s in statuses if s != "ok")
    return f"{finite} of {len(statuses)} seeds ({other} in the others)"


def bd_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BD-rate of personalized vs each baseline, per client and seed, and over seeds."""
    table = []
    clients = sorted({r["client"] for r in rows}, key=lambda c: (c == "mean", c))
    seeds = sorted({r["seed"] for r in rows})
    for baseline in baselines(rows):
        for client in clients:
            values, statuses = [], []
            # a seed in which either method has no run is no comparison ("not run"), not a
            # curve with too few points: seeds added to personalized alone leave fedavg's
            # value of the seeds that ran it
            pairs = {
                seed: (
                    curve(rows, baseline, client, seed)[:2],
                    curve(rows, "personalized", client, seed)[:2],
                )
                for seed in seeds
            }
            ran = [seed for seed, (anchor, test) in pairs.items() if anchor[0] and test[0]]
            for seed in ran:
                anchor, test = pairs[seed]
                value, status = bd_rate(anchor, test)
                values.append(value)
                statuses.append(status)
                table.append(
                    {
                        "test": "personalized",
                        "anchor": baseline,
                        "client": client,
                        "seed": seed,
                        "bd_rate_percent": value,
                        "status": status,
                    }
                )
            finite = [v for v in values if math.isfinite(v)]
            table.append(
                {
                    "test": "personalized",
                    "anchor": baseline,
                    "client": client,
                    "seed": "all",
                    "bd_rate_percent": statistics.fmean(finite) if finite else math.nan,
                    "status": seed_status(statuses, len(finite)) if ran else NOT_RUN,
                    "std_over_seeds": statistics.pstdev(finite) if len(finite) > 1 else math.nan,
                    "seeds_compared": len(finite),
                    "seeds_total": len(ran),
                }
            )
    return table


def format_bd(table: list[dict[str, Any]]) -> str:
    """BD-rate rows over seeds; curves with too few points or no run get one line, not a row each,
    and none when no curve has enough (a sweep of one λ has no BD-rate to speak of)."""
    few = [r for r in table if r["seed"] == "all" and r["status"] in NOT_COMPARED]
    table = [r for r in table if r not in few]
    some = any(r["seed"] == "all" for r in table)
    lines = (
        [f"BD-rate: {len(few)} curve pairs have under 2 λ values or no run (none computed)"]
        if few and some
        else []
    )
    if not any(r["seed"] == "all" for r in table):
        return "\n".join(lines)
    lines.append(f"{'BD-rate of personalized vs':>28} {'client':>7} {'mean %':>8} {'std':>6} seeds")
    setting = None
    for row in table:
        if row.get("setting", setting) != setting:
            setting = row["setting"]
            lines.append(f"setting: {setting}")
        if row["seed"] == "all":
            value = row["bd_rate_percent"]
            text = f"{value:8.2f}" if math.isfinite(value) else row["status"].rjust(14)
            std = row["std_over_seeds"]
            lines.append(
                f"{row['anchor']:>28} {row['client']:>7} {text} "
                f"{std if math.isfinite(std) else float('nan'):6.2f} "
                f"{row['seeds_compared']}/{row.get('seeds_total', row['seeds_compared'])}"
            )
    return "\n".join(lines)


def classic_bd_table(
    rows: list[dict[str, Any]], classic: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """BD-rate of each method's curve (mean over seeds) against JPEG's and WebP's on the same
    test images, per client (``classic`` holds the codecs' points per client)."""
    table = []
    clients = sorted({r["client"] for r in rows}, key=lambda c: (c == "mean", c))
    for method in (m for m in METHODS if any(r["method"] == m for r in rows)):
        for client in clients:
            test = curve(rows, method, client)[:2]
            row: dict[str, Any] = {"method": method, "client": client}
            for codec in ("JPEG", "WebP"):
                points = codec_points(classic, codec, client)
                anchor = ([p["real_bpp"] for p in points], [p["psnr"] for p in points])
                row[f"vs_{codec}"], row[f"status_vs_{codec}"] = bd_rate(anchor, test)
            table.append(row)
    return table


def format_classic_bd(table: list[dict[str, Any]]) -> str:
    """The mean client's BD-rate against JPEG and WebP per method (settings that have one)."""
    mean = [r for r in table if r["client"] == "mean" and r["status_vs_JPEG"] != "too few points"]
    if not mean:
        return ""
    lines = [f"{'BD-rate of the mean client vs':>30} {'JPEG %':>8} {'WebP %':>8}"]
    for r in mean:
        values = [
            f"{r[f'vs_{c}']:8.1f}" if math.isfinite(r[f"vs_{c}"]) else r[f"status_vs_{c}"]
            for c in ("JPEG", "WebP")
        ]
        label = f"{r['method']} ({r['setting']})" if r.get("setting") else r["method"]
        lines.append(f"{label:>30} {values[0]:>8} {values[1]:>8}")
    return "\n".join(lines)

"""Is a sweep converged enough to read R–D curves from it? Two checks, per run and curve.

- ``loss``: the mean training loss over the last quarter of rounds moved less than
  :data:`FLAT_PERCENT` from the quarter before (per run);
- ``monotone``: along λ, both the rate and the quality (PSNR) rise (per setting, method,
  client and seed) — otherwise the points are not yet a rate–distortion curve.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from itertools import pairwise
from typing import Any

FLAT_PERCENT = 2.0


def loss_rows(training: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run: relative change of the train loss over its last quarter of rounds."""
    by_run: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for row in training:
        by_run[row["run"]].append((row["round"], row["loss"]))
    rows = []
    for run, points in sorted(by_run.items()):
        losses = [loss for _, loss in sorted(points)]
        width = max(1, len(losses) // 4)
        if len(losses) < 2 * width or len(losses) < 4:
            rows.append(
                {
                    "check": "loss",
                    "run": run,
                    "change_percent": "",
                    "ok": False,
                    "status": "too few rounds",
                }
            )
            continue
        last = statistics.fmean(losses[-width:])
        before = statistics.fmean(losses[-2 * width : -width])
        change = 100 * (last - before) / abs(before)
        ok = abs(change) < FLAT_PERCENT
        rows.append(
            {
                "check": "loss",
                "run": run,
                "change_percent": round(change, 3),
                "ok": ok,
                "status": "flat" if ok else "still moving",
            }
        )
    return rows


def monotone_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (setting, method, client, seed) curve: do rate and PSNR rise with λ?"""
    curves: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        curves[(r.get("setting", "all"), r["method"], r["client"], r["seed"])].append(r)
    rows = []
    for (setting, method, client, seed), points in sorted(curves.items(), key=str):
        points = sorted(points, key=lambda r: r["lmbda"])
        rate_rises = all(a["real_bpp"] < b["real_bpp"] for a, b in pairwise(points))
        psnr_rises = all(a["psnr"] < b["psnr"] for a, b in pairwise(points))
        ok = len(points) >= 2 and rate_rises and psnr_rises
        rows.append(
            {
                "check": "monotone",
                "setting": setting,
                "method": method,
                "client": client,
                "seed": seed,
                "points": len(points),
                "rate_rises": rate_rises,
                "psnr_rises": psnr_rises,
                "ok": ok,
            }
        )
    return rows


def convergence_rows(
    results: list[dict[str, Any]], training: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Both checks, loss rows first."""
    return loss_rows(training) + monotone_rows(results)


def format_convergence(rows: list[dict[str, Any]]) -> str:
    """Two summary lines: flat losses per run, monotone curves."""
    lines = []
    for check, text in (
        ("loss", f"train loss flat (<{FLAT_PERCENT:g}% over the last quarter of rounds)"),
        ("monotone", "rate and PSNR both rise with λ"),
    ):
        subset = [r for r in rows if r["check"] == check]
        if subset:
            unit = "runs" if check == "loss" else "curves (method x client x seed)"
            lines.append(f"{text}: {sum(r['ok'] for r in subset)} of {len(subset)} {unit}")
    return "\n".join(lines)

"""Is a sweep converged enough to read R–D curves from it? Checks per run, curve and setting.

- ``loss``: the mean training loss over the last quarter of rounds moved less than
  :data:`FLAT_PERCENT` from the quarter before (per run). In a run whose learning rate
  dropped at the end, only the rounds at the final rate count (the drop itself is a step in
  the loss, not a sign that training still moves);
- ``monotone``: along λ, both the rate and the quality (PSNR) rise (per setting, method,
  client and seed) — otherwise the points are not yet a rate–distortion curve;
- ``rounds``: every run of a setting trained the same number of rounds (a warning, since
  runs extended to more rounds, or seeds merged from sweeps of another length, share it).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from itertools import pairwise
from typing import Any

from study.bd_rate import START

FLAT_PERCENT = 2.0


def final_phase(points: list[tuple[int, float, float | None]]) -> tuple[list[float], bool]:
    """Losses of the trailing rounds trained at the run's final learning rate, and whether
    the lr changed before them; rounds with no lr recorded are left out (all rounds when
    none has one). ``points`` are (round, loss, lr) sorted by round."""
    known = [(loss, lr) for _, loss, lr in points if lr is not None]
    if not known:
        return [loss for _, loss, _ in points], False
    final_lr = known[-1][1]
    phase: list[float] = []
    for loss, lr in reversed(known):
        if not math.isclose(lr, final_lr):
            return phase, True
        phase.insert(0, loss)
    return phase, False


RUN_KEYS = ("setting", "method", "lmbda", "seed", "run")  # one run, even across merged sweeps


def loss_rows(training: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run: relative change of the train loss over its last quarter of rounds
    (of the rounds at the final learning rate, where that dropped)."""
    by_run: dict[tuple, list[tuple[int, float, float | None]]] = defaultdict(list)
    for row in training:
        key = tuple(row.get(k) for k in RUN_KEYS)
        by_run[key].append((row["round"], row["loss"], row.get("lr")))
    rows = []
    for key, points in sorted(by_run.items(), key=str):
        points.sort(key=lambda p: p[0])
        losses, decayed = final_phase(points)
        width = max(1, len(losses) // 4)
        run = {k: v for k, v in zip(RUN_KEYS, key, strict=True) if v is not None}
        if len(losses) < 2 * width or len(losses) < (2 if decayed else 4):
            rows.append(
                {
                    "check": "loss",
                    **run,
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
                **run,
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


def rounds_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per setting: did all its runs train the same number of rounds? (Runs that
    differ only in ``num_rounds`` share a setting, e.g. seeds merged from two sweeps.)"""
    rounds: dict[str, set[int]] = defaultdict(set)
    for r in results:
        if r.get("rounds") is not None and r["method"] != START:  # the base trained none
            rounds[r.get("setting", "all")].add(int(r["rounds"]))
    return [
        {
            "check": "rounds",
            "setting": setting,
            "rounds": "/".join(map(str, sorted(values))),
            "ok": len(values) == 1,
        }
        for setting, values in sorted(rounds.items())
    ]


def convergence_rows(
    results: list[dict[str, Any]], training: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """All checks, loss rows first."""
    return loss_rows(training) + monotone_rows(results) + rounds_rows(results)


def format_convergence(rows: list[dict[str, Any]]) -> str:
    """Two summary lines: flat losses per run, monotone curves."""
    lines = []
    for check, text in (
        (
            "loss",
            f"train loss flat (<{FLAT_PERCENT:g}% over the last quarter of rounds at the final lr)",
        ),
        ("monotone", "rate and PSNR both rise with λ"),
    ):
        subset = [r for r in rows if r["check"] == check]
        if check == "monotone":  # a curve of one λ says nothing about monotonicity
            subset = [r for r in subset if r["points"] >= 2]
        if subset:
            unit = "runs" if check == "loss" else "curves (method x client x seed)"
            lines.append(f"{text}: {sum(r['ok'] for r in subset)} of {len(subset)} {unit}")
    lines += [
        f"warning: runs of setting {r['setting']} trained different numbers of rounds "
        f"({r['rounds']}); compare them with care"
        for r in rows
        if r["check"] == "rounds" and not r["ok"]
    ]
    return "\n".join(lines)

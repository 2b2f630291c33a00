"""Rate–distortion report of a sweep: results CSV, R–D and training plots, BD-rate table.

    fedntc-report SWEEP_DIR [--out DIR]

Reads every run (``config.json``, ``summary.json``, ``rounds.csv``) under ``SWEEP_DIR`` and
writes, without retraining: ``results.csv`` (per run and client, plus the pixel-weighted mean
as client ``mean``), ``classic.csv`` (JPEG/WebP on the same test images, image data only),
``rd.png`` (one panel per client plus the mean; mean over seeds with their spread),
``training.png`` (train loss per round) and ``bd_rate.csv`` (Bjøntegaard delta rate, PSNR based,
of ``personalized`` against ``local`` and ``fedavg``, per client and seed, and over seeds).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import bjontegaard
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from common.checkpoint import atomic_write_csv  # noqa: E402
from common.classic import classic_curves  # noqa: E402
from common.config import from_run_config  # noqa: E402
from common.data import load_client_data  # noqa: E402

METHODS = ("personalized", "fedavg", "local")
COLORS = {"personalized": "C0", "fedavg": "C1", "local": "C2", "JPEG": "0.5", "WebP": "0.2"}


def collect(sweep_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Result rows (run x client, plus ``mean``) and training rows of every finished run."""
    results, training = [], []
    for summary_path in sorted(sweep_dir.glob("**/summary.json")):
        run = summary_path.parent
        conf = json.loads((run / "config.json").read_text())
        summary = json.loads(summary_path.read_text())
        base = {
            "method": summary["method"],
            "lmbda": summary["lmbda"],
            "seed": conf["seed"],
            "rounds": summary["rounds"],
            "run": str(run.relative_to(sweep_dir)),
        }
        for client, metrics in [*summary["clients"].items(), ("mean", summary["mean"])]:
            results.append(
                {
                    **base,
                    "client": client,
                    **{k: metrics[k] for k in ("real_bpp", "est_bpp", "psnr", "ms_ssim")},
                }
            )
        rounds_csv = run / "rounds.csv"
        if rounds_csv.exists():
            for row in csv.DictReader(rounds_csv.open()):
                if row["phase"] == "train":
                    training.append(
                        {**base, "round": int(row["round"]), "loss": float(row["loss"])}
                    )
    if not results:
        raise FileNotFoundError(f"no finished runs (summary.json) under {sweep_dir}")
    return results, training


def classic_rows(sweep_dir: Path, clients: list[str]) -> list[dict[str, Any]]:
    """JPEG/WebP curves on each client's test images (the data config of the first run)."""
    conf = from_run_config(json.loads(next(sweep_dir.glob("**/config.json")).read_text()))
    if conf.data.source == "synthetic" and conf.data.image_size < 16:
        return []
    rows, all_images = [], []
    for client in clients:
        images = load_client_data(conf.data, int(client), conf.seed).test
        all_images += images
        rows += [{"client": client, **r} for r in classic_curves(images)]
    return rows + [{"client": "mean", **r} for r in classic_curves(all_images)]


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
    points`` (under 2 λ values) or ``no overlap`` (PSNR ranges overlap too little)."""
    if min(len(anchor[0]), len(test[0])) < 2:
        return math.nan, "too few points"
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


def bd_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BD-rate of personalized vs each baseline, per client and seed, and over seeds."""
    table = []
    clients = sorted({r["client"] for r in rows}, key=lambda c: (c == "mean", c))
    seeds = sorted({r["seed"] for r in rows})
    for baseline in ("local", "fedavg"):
        for client in clients:
            values, statuses = [], []
            for seed in seeds:
                anchor = curve(rows, baseline, client, seed)[:2]
                test = curve(rows, "personalized", client, seed)[:2]
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
                    "status": "ok" if finite else statuses[0],
                    "std_over_seeds": statistics.pstdev(finite) if len(finite) > 1 else math.nan,
                    "seeds_compared": len(finite),
                }
            )
    return table


def save_figure(fig: plt.Figure, axes: Any, path: Path) -> None:
    """Legend on the first panel, tight layout, PNG at ``path``."""
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_rd(rows, classic, clients: list[str], path: Path) -> None:
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
        ax.set_title(f"client {client}" if client != "mean" else "mean (pixel-weighted)")
        ax.set_xlabel("bits per pixel (real bitstreams)")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    save_figure(fig, axes, path)


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


def build_report(sweep_dir: Path, out_dir: Path | None = None) -> tuple[Path, list[dict[str, Any]]]:
    """Write results.csv, classic.csv, rd.png, training.png and bd_rate.csv; return the
    output folder and the BD-rate table."""
    out_dir = out_dir or sweep_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    results, training = collect(sweep_dir)
    clients = sorted({r["client"] for r in results if r["client"] != "mean"}, key=int)
    atomic_write_csv(results, out_dir / "results.csv")
    classic = classic_rows(sweep_dir, clients)
    if classic:
        atomic_write_csv(classic, out_dir / "classic.csv")
    table = bd_table(results)
    atomic_write_csv(table, out_dir / "bd_rate.csv")
    plot_rd(results, classic, clients, out_dir / "rd.png")
    if training:
        plot_training(training, out_dir / "training.png")
    return out_dir, table


def format_bd(table: list[dict[str, Any]]) -> str:
    lines = [f"{'BD-rate of personalized vs':>28} {'client':>7} {'mean %':>8} {'std':>6} seeds"]
    for row in table:
        if row["seed"] == "all":
            value = row["bd_rate_percent"]
            text = f"{value:8.2f}" if math.isfinite(value) else row["status"].rjust(14)
            std = row["std_over_seeds"]
            lines.append(
                f"{row['anchor']:>28} {row['client']:>7} {text} "
                f"{std if math.isfinite(std) else float('nan'):6.2f} {row['seeds_compared']}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fedntc-report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, help="default: SWEEP_DIR/report")
    args = parser.parse_args(argv)
    out, table = build_report(args.sweep_dir, args.out)
    print(format_bd(table))
    print(f"report written to {out}")


if __name__ == "__main__":
    main()

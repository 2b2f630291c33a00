"""Rate–distortion report of a sweep: results CSV, R–D and training plots, BD-rate table.

    fedntc-report SOURCE [SOURCE ...] [--out DIR] [--lmbda L ...]

Reads every run (``config.json``, ``summary.json``, ``rounds.csv``) under each sweep folder,
or the CSVs of an earlier report folder (so a report regenerates, and seeds trained apart
merge, without the run directories), and writes, without retraining: ``results.csv`` (per
run and client, plus the pixel-weighted mean as client ``mean``), ``training.csv`` (train
loss and lr per run and round), ``settings.json`` (each setting's config), ``classic.csv``
(JPEG/WebP on the same test images, image data only), ``bound.csv`` (each client's Shannon
lower bound, vector source only), ``rd.png`` (one panel per client plus the mean; mean over
seeds with their spread), ``training.png`` (train loss per round), ``bd_rate.csv``
(Bjøntegaard delta rate, PSNR based, of ``personalized`` against ``local`` and ``fedavg``,
per client and seed, and over seeds), ``convergence.csv`` (flat losses per run, rate and
PSNR rising with λ per curve; see ``server.convergence``) and ``lagrangian.csv`` /
``lagrangian_summary.csv`` (test-set R + λ·D of personalized vs each baseline at the same
λ, which still reads curves too flat for a BD-rate; see ``server.lagrangian``).

Runs whose configs differ in more than method, λ and seed (a sweep over
``data.heterogeneity`` or ``data.num_clients``, say) form separate settings: each gets its
own subfolder with ``rd.png`` and ``training.png``, and ``gain.png`` plots the BD-rate of
the mean client against the setting.
"""

from __future__ import annotations

import argparse
import math
import statistics
import warnings
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

import bjontegaard
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from common.checkpoint import atomic_write_csv, atomic_write_text  # noqa: E402
from common.classic import classic_curves  # noqa: E402
from common.config import RunConfig  # noqa: E402
from common.data import load_client_data, vectors  # noqa: E402
from server.convergence import convergence_rows, format_convergence  # noqa: E402
from server.lagrangian import format_lagrangian, lagrangian_rows, lagrangian_summary  # noqa: E402
from server.report_sources import is_report_dir, load_sources, settings_json  # noqa: E402

METHODS = ("personalized", "fedavg", "local")
COLORS = {"personalized": "C0", "fedavg": "C1", "local": "C2", "JPEG": "0.5", "WebP": "0.2"}
AXES = {
    "images": ("bits per pixel (real bitstreams)", "PSNR (dB)"),
    "vectors": ("bits per vector (real bitstreams)", "-10 log10 MSE per dimension (dB)"),
}


def classic_rows(conf: RunConfig, clients: list[str]) -> list[dict[str, Any]]:
    """JPEG/WebP curves on each client's test images (image data only)."""
    if conf.data.source == "vectors" or (
        conf.data.source == "synthetic" and conf.data.image_size < 16
    ):
        return []
    rows, all_images = [], []
    for client in clients:
        images = load_client_data(conf.data, int(client), conf.seed).test
        all_images += images
        rows += [{"client": client, **r} for r in classic_curves(images)]
    return rows + [{"client": "mean", **r} for r in classic_curves(all_images)]


def bound_rows(
    conf: RunConfig, clients: list[str], results: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each client's Shannon lower bound (vector source only) over the measured quality
    range: rows of ``client``, ``psnr`` (-10 log10 MSE) and ``rate`` in bits per vector."""
    if conf.data.source != "vectors":
        return []
    data = conf.data
    rows = []
    for client in clients:
        measured = [r["psnr"] for r in results if r["client"] == client]
        entropy = vectors.entropy_bits(
            int(client), data.latent_dim, data.heterogeneity, data.source_seed
        )
        low, high = min(measured) - 1.0, max(measured) + 1.0
        for i in range(41):
            quality = low + (high - low) * i / 40
            rate = vectors.shannon_lower_bound(entropy, data.latent_dim, 10 ** (-quality / 10))
            rows.append({"client": client, "psnr": quality, "rate": rate})
    return rows


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


def plot_gain(table: list[dict[str, Any]], path: Path) -> None:
    """Mean BD-rate over clients' mean curve (client ``mean``) of personalized against each
    baseline, one point per setting, with the spread over seeds."""
    settings = sorted({r["setting"] for r in table})
    fig, axes = plt.subplots(1, 1, figsize=(max(5, 1.6 * len(settings)), 3.6), squeeze=False)
    ax = axes[0][0]
    for baseline in ("local", "fedavg"):
        points = [
            next(
                r
                for r in table
                if r["setting"] == setting
                and r["anchor"] == baseline
                and r["client"] == "mean"
                and r["seed"] == "all"
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


def build_report(
    sources: list[Path], out_dir: Path | None = None, lmbdas: list[float] | None = None
) -> tuple[Path, list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Write results.csv, training.csv, settings.json, classic.csv (images), bound.csv
    (vectors), rd.png, training.png, bd_rate.csv, convergence.csv, lagrangian.csv and
    lagrangian_summary.csv; return the output folder, the BD-rate table, the convergence
    checks and the matched-λ summary (see :mod:`server.lagrangian`).

    ``sources`` are sweep folders and/or earlier report folders (see
    :mod:`server.report_sources`); the default ``out_dir`` is ``report/`` in a single sweep
    folder. A sweep over several settings (e.g. heterogeneity) gets one subfolder of plots
    per setting and ``gain.png``. ``lmbdas`` keeps only the runs of those λ values (e.g. to
    leave out an unconverged one)."""
    if out_dir is None:
        if len(sources) != 1 or is_report_dir(sources[0]):
            raise ValueError("name the output folder (--out) to read several sources or a report")
        out_dir = sources[0] / "report"
    if out_dir.resolve() in {s.resolve() for s in sources}:
        raise ValueError(f"--out {out_dir} is one of the sources; write the report elsewhere")
    rows_in = load_sources(sources)
    results, training = rows_in.results, rows_in.training
    if lmbdas:
        keep = {round(x, 12) for x in lmbdas}
        results = [r for r in results if round(r["lmbda"], 12) in keep]
        training = [r for r in training if round(r["lmbda"], 12) in keep]
        if not results:
            raise ValueError(f"no finished runs with λ in {sorted(keep)} in {sources}")
    kept = {r["setting"] for r in results}
    settings = {name: conf for name, conf in rows_in.settings.items() if name in kept}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(results, out_dir / "results.csv")
    atomic_write_csv(training, out_dir / "training.csv")
    atomic_write_text(settings_json(settings), out_dir / "settings.json")
    table, classic_all, bounds_all = [], [], []
    for name, conf in sorted(settings.items()):
        rows = [r for r in results if r["setting"] == name]
        clients = sorted({r["client"] for r in rows if r["client"] != "mean"}, key=int)
        if name in rows_in.classic:
            classic = [r for r in rows_in.classic[name] if r["client"] in [*clients, "mean"]]
        else:
            classic = [{"setting": name, **r} for r in classic_rows(conf, clients)]
        bounds = bound_rows(conf, clients, rows)
        classic_all += classic
        bounds_all += [{"setting": name, **r} for r in bounds]
        table += [{"setting": name, **r} for r in bd_table(rows)]
        # a setting may name a path (data.root=/a/b): one folder level, not several
        folder = out_dir if len(settings) == 1 else out_dir / name.replace("/", "_")
        folder.mkdir(exist_ok=True)
        kind = "vectors" if conf.data.source == "vectors" else "images"
        plot_rd(rows, classic, bounds, clients, folder / "rd.png", kind)
        setting_training = [r for r in training if r["setting"] == name]
        if setting_training:
            plot_training(setting_training, folder / "training.png")
    if classic_all:
        atomic_write_csv(classic_all, out_dir / "classic.csv")
    if bounds_all:
        atomic_write_csv(bounds_all, out_dir / "bound.csv")
    atomic_write_csv(table, out_dir / "bd_rate.csv")
    convergence = convergence_rows(results, training)
    atomic_write_csv(convergence, out_dir / "convergence.csv")
    points = lagrangian_rows(results)
    matched = lagrangian_summary(points)
    if points:
        atomic_write_csv(points, out_dir / "lagrangian.csv")
        atomic_write_csv(matched, out_dir / "lagrangian_summary.csv")
    if len(settings) > 1:
        plot_gain(table, out_dir / "gain.png")
    return out_dir, table, convergence, matched


def format_bd(table: list[dict[str, Any]]) -> str:
    lines = [f"{'BD-rate of personalized vs':>28} {'client':>7} {'mean %':>8} {'std':>6} seeds"]
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
                f"{std if math.isfinite(std) else float('nan'):6.2f} {row['seeds_compared']}"
            )
    return "\n".join(lines)


def format_report(
    table: list[dict[str, Any]], convergence: list[dict[str, Any]], matched: list[dict[str, Any]]
) -> str:
    """What a report prints: BD-rates, the matched-λ summary and the convergence checks."""
    return "\n".join(
        (format_bd(table), format_lagrangian(matched), format_convergence(convergence))
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fedntc-report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "sources",
        type=Path,
        nargs="+",
        metavar="SOURCE",
        help="sweep folder(s) of finished runs and/or earlier report folder(s), merged",
    )
    parser.add_argument("--out", type=Path, help="default: SWEEP_DIR/report (one sweep)")
    parser.add_argument(
        "--lmbda", type=float, nargs="+", help="only the runs of these λ values (default: all)"
    )
    args = parser.parse_args(argv)
    try:
        out, table, convergence, matched = build_report(args.sources, args.out, args.lmbda)
    except (FileNotFoundError, ValueError) as e:
        parser.exit(2, f"fedntc-report: error: {e}\n")
    print(format_report(table, convergence, matched))
    print(f"report written to {out}")


if __name__ == "__main__":
    main()

"""Rate–distortion report of a sweep: results CSV, R–D and training plots, BD-rate table.

    fedntc-report SOURCE [SOURCE ...] [--out DIR] [--lmbda L ...]

Reads every run (``config.json``, ``summary.json``, ``rounds.csv``) under each sweep folder,
or the CSVs of an earlier report folder (so a report regenerates, and seeds trained apart
merge, without the run directories), and writes, without retraining: ``results.csv`` (per
run and client, plus the pixel-weighted mean as client ``mean``; for ``model.init=base``
also method ``base``: the shipped base each λ started from, before any training),
``training.csv`` (train loss and lr per run and round), ``settings.json`` (each setting's
config), ``classic.csv`` (JPEG/WebP on the same test images, image data only), ``bound.csv``
(each client's Shannon lower bound, vector source only), ``rd.png`` (one panel per client
plus the mean; mean over seeds with their spread), ``training.png`` (train loss per round),
``bd_rate.csv`` (Bjøntegaard delta rate, PSNR based, of ``personalized`` against ``local``
and ``fedavg``, per client and seed, and over seeds), ``bd_rate_classic.csv`` (each method's
curve, mean over seeds, against JPEG's and WebP's on the same images), ``convergence.csv``
(flat losses per run, rate and PSNR rising with λ per curve; see ``study.convergence``) and
``lagrangian.csv`` / ``lagrangian_summary.csv`` (test-set R + λ·D of personalized vs each
baseline at the same λ, which still reads curves too flat for a BD-rate; see
``study.lagrangian``).

Runs whose configs differ in more than method, λ and seed (a sweep over
``data.heterogeneity`` or ``data.num_clients``, say) form separate settings: each gets its
own subfolder with ``rd.png`` and ``training.png``, and ``gain.png`` plots the BD-rate of
the mean client against the setting.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, NamedTuple

from common.checkpoint import atomic_write_csv, atomic_write_text
from common.data import client_name
from study.baselines import bound_rows, classic_rows, start_rows
from study.bd_rate import bd_table, classic_bd_table, format_bd, format_classic_bd
from study.convergence import convergence_rows, format_convergence
from study.lagrangian import format_lagrangian, lagrangian_rows, lagrangian_summary
from study.plots.gain import plot_gain
from study.plots.rd import plot_rd
from study.plots.regime import plot_regime
from study.plots.training import plot_training
from study.regime import format_regime, regime_rows
from study.sources import is_report_dir, load_sources, settings_json


class Report(NamedTuple):
    """What :func:`build_report` wrote, and the tables it prints."""

    out: Path
    table: list[dict[str, Any]]  # BD-rates (study.bd_rate)
    convergence: list[dict[str, Any]]
    matched: list[dict[str, Any]]  # matched-λ summary (study.lagrangian)
    regime: list[dict[str, Any]]  # the regime map (study.regime), empty if not a map
    versus_classic: list[dict[str, Any]]  # each method vs JPEG/WebP (study.bd_rate)


def build_report(
    sources: list[Path], out_dir: Path | None = None, lmbdas: list[float] | None = None
) -> Report:
    """Write results.csv, training.csv, settings.json, classic.csv (images), bound.csv
    (vectors), rd.png, training.png, bd_rate.csv, convergence.csv, lagrangian.csv and
    lagrangian_summary.csv, and for a sweep over data per client × heterogeneity regime.csv
    and regime.png (see :mod:`study.regime`); return them as a :class:`Report`.

    ``sources`` are sweep folders and/or earlier report folders (see
    :mod:`study.sources`); the default ``out_dir`` is ``report/`` in a single sweep
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
    for name, conf in sorted(settings.items()):
        results = results + start_rows(name, conf, [r for r in results if r["setting"] == name])
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(results, out_dir / "results.csv")
    atomic_write_csv(training, out_dir / "training.csv")
    atomic_write_text(settings_json(settings), out_dir / "settings.json")
    table, classic_all, bounds_all, versus_classic = [], [], [], []
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
        versus_classic += [{"setting": name, **r} for r in classic_bd_table(rows, classic)]
        # a setting may name a path (data.root=/a/b): one folder level, not several
        folder = out_dir if len(settings) == 1 else out_dir / name.replace("/", "_")
        folder.mkdir(exist_ok=True)
        kind = "vectors" if conf.data.source == "vectors" else "images"
        names = {c: client_name(conf.data, int(c)) for c in clients}
        plot_rd(rows, classic, bounds, clients, folder / "rd.png", kind, names)
        setting_training = [r for r in training if r["setting"] == name]
        if setting_training:
            plot_training(setting_training, folder / "training.png")
    if classic_all:
        atomic_write_csv(classic_all, out_dir / "classic.csv")
    if bounds_all:
        atomic_write_csv(bounds_all, out_dir / "bound.csv")
    atomic_write_csv(table, out_dir / "bd_rate.csv")
    if versus_classic:
        atomic_write_csv(versus_classic, out_dir / "bd_rate_classic.csv")
    convergence = convergence_rows(results, training)
    atomic_write_csv(convergence, out_dir / "convergence.csv")
    points = lagrangian_rows(results)
    matched = lagrangian_summary(points)
    if points:
        atomic_write_csv(points, out_dir / "lagrangian.csv")
        atomic_write_csv(matched, out_dir / "lagrangian_summary.csv")
    if len(settings) > 1:
        plot_gain(table, out_dir / "gain.png")
    regime = regime_rows(table, convergence, settings)
    if regime:
        atomic_write_csv(regime, out_dir / "regime.csv")
        kind = "vectors" if next(iter(settings.values())).data.source == "vectors" else "images"
        maps = sorted({r["map"] for r in regime})
        for name in maps:
            file = "regime.png" if len(maps) == 1 else f"regime-{name.replace('/', '_')}.png"
            plot_regime([r for r in regime if r["map"] == name], out_dir / file, kind)
    return Report(out_dir, table, convergence, matched, regime, versus_classic)


def format_report(report: Report) -> str:
    """What a report prints: BD-rates, the matched-λ summary, the regime map and the
    convergence checks."""
    parts = (
        format_bd(report.table),
        format_classic_bd(report.versus_classic),
        format_lagrangian(report.matched),
        format_regime(report.regime),
        format_convergence(report.convergence),
    )
    return "\n".join(part for part in parts if part)


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
        report = build_report(args.sources, args.out, args.lmbda)
    except (FileNotFoundError, ValueError) as e:
        parser.exit(2, f"fedntc-report: error: {e}\n")
    print(format_report(report))
    print(f"report written to {report.out}")


if __name__ == "__main__":
    main()

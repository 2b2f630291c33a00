"""Printing results: one run's table, and a comparison table at the end of a multirun."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from study.same_rate import format_same_rate, same_rate_rows
from study.sources import setting_names


def collect_summaries(root: Path) -> list[dict[str, Any]]:
    """Every ``summary.json`` under ``root`` (one per finished run), with the run's ``seed``
    and ``setting`` (see :func:`study.sources.setting_names`) added."""
    paths = sorted(root.glob("**/summary.json"))
    configs = {p.parent: json.loads((p.parent / "config.json").read_text()) for p in paths}
    settings = setting_names(configs) if configs else {}
    return [
        {
            **json.loads(p.read_text()),
            "seed": configs[p.parent]["seed"],
            "setting": settings[p.parent],
        }
        for p in paths
    ]


def comparison_table(summaries: list[dict[str, Any]]) -> str:
    """Methods side by side: pixel-weighted means and per-client PSNR / real bpp; a seed
    column and a setting line appear when the sweep has more than one."""
    if not summaries:
        return "no finished runs"
    clients = sorted({c for s in summaries for c in s["clients"]}, key=int)
    seeds = len({s.get("seed", 0) for s in summaries}) > 1
    header = f"{'method':>13} {'lmbda':>8}" + (f" {'seed':>4}" if seeds else "")
    header += f" {'bpp':>7} {'PSNR':>6} {'MS-SSIM':>7} {'KB/round':>9}"
    header += "".join(f" {'c' + c + ' bpp/PSNR':>15}" for c in clients)
    lines = []
    setting = None
    for s in sorted(
        summaries,
        key=lambda s: (s.get("setting", "all"), s["lmbda"], s["method"], s.get("seed", 0)),
    ):
        if s.get("setting", "all") != setting:
            setting = s.get("setting", "all")
            lines += ([f"setting: {setting}"] if setting != "all" else []) + [header]
        m = s["mean"]
        line = f"{s['method']:>13} {s['lmbda']:8.4f}" + (f" {s['seed']:>4}" if seeds else "")
        line += (
            f" {m['real_bpp']:7.3f} {m['psnr']:6.2f} "
            f"{m['ms_ssim']:7.4f} {s['bytes_per_client_per_round']['up'] / 1024:9.1f}"
        )
        for c in clients:
            r = s["clients"].get(c)
            line += f" {r['real_bpp']:7.3f}/{r['psnr']:6.2f}" if r else f" {'-':>15}"
        lines.append(line)
    return "\n".join(lines)


class PrintResultsCallback(Callback):
    """Hydra callback: after a multirun, print every run's results in one table and write
    the R–D report (``fedntc-report``) into ``<sweep dir>/report``."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from study.report import build_report, format_report

        sweep_dir = Path(config.hydra.sweep.dir)
        print(f"\nResults of {sweep_dir} (final round, real bitstreams):", flush=True)
        print(comparison_table(collect_summaries(sweep_dir)), flush=True)
        report = build_report([sweep_dir])
        runs = sorted(p.parent for p in sweep_dir.glob("**/summary.json"))
        if len({s["setting"] for s in collect_summaries(sweep_dir)}) == 1:
            print(format_same_rate(same_rate_rows(runs)), flush=True)
        print(format_report(report), flush=True)
        print(f"R-D plots, training curves and tables: {report.out}", flush=True)

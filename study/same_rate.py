"""Learned codecs beside JPEG and WebP at the same rate, on the same test images.

The end-of-sweep table of the quick start: per run, the pixel-weighted bpp, PSNR and
MS-SSIM of the final round, and JPEG's and WebP's PSNR at exactly that bpp on the clients'
own test images (linear interpolation of each codec's curve over its quality setting), plus
the starting point (``model.init``) evaluated before any federated training.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.config import RunConfig, from_run_config
from common.data import load_client_data
from common.evaluate import evaluate_coded
from common.init import base_path, initial_model
from study.classic import CODECS, QUALITIES, classic_point


def test_images(conf: RunConfig) -> list[torch.Tensor]:
    """Every client's test images, in client order."""
    images: list[torch.Tensor] = []
    for client in range(conf.data.num_clients):
        images += load_client_data(conf.data, client, conf.seed).test
    return images


def start_label(conf: RunConfig, lmbda: float) -> str:
    """The file name of a run's starting point (``model.init``) at ``lmbda``."""
    if conf.model.init == "base":
        return base_path(conf.model, lmbda).name
    return Path(conf.model.init).name if "/" in conf.model.init else conf.model.init


def classic_curve(images: list[torch.Tensor], codec: str) -> list[dict[str, float]]:
    """``codec`` at every quality of :data:`QUALITIES` on ``images``, by rate."""
    points = (classic_point(images, codec, q) for q in QUALITIES)
    return sorted(points, key=lambda p: p["real_bpp"])


def at_rate(points: list[dict[str, float]], bpp: float) -> dict[str, float]:
    """PSNR and MS-SSIM of a :func:`classic_curve` at ``bpp`` (linear interpolation; NaN
    outside the range its qualities reach)."""
    rates = [p["real_bpp"] for p in points]
    if not rates[0] <= bpp <= rates[-1]:
        return {"psnr": math.nan, "ms_ssim": math.nan}
    return {
        key: float(np.interp(bpp, rates, [p[key] for p in points])) for key in ("psnr", "ms_ssim")
    }


def classic_at_rate(images: list[torch.Tensor], codec: str, bpp: float) -> dict[str, float]:
    """PSNR and MS-SSIM of ``codec`` at ``bpp`` on ``images`` (NaN outside its range)."""
    return at_rate(classic_curve(images, codec), bpp)


def same_rate_rows(runs: list[Path]) -> list[dict[str, Any]]:
    """One row per finished run (and one for the starting point), each with JPEG's and
    WebP's PSNR at its rate. ``runs`` are run folders of one data and model setting."""
    if not runs:
        return []
    conf = from_run_config(json.loads((runs[0] / "config.json").read_text()))
    if conf.data.source == "vectors":
        return []
    images = test_images(conf)
    rows = []
    if conf.model.init != "scratch":
        lmbdas = sorted({json.loads((r / "summary.json").read_text())["lmbda"] for r in runs})
        starts = {start_label(conf, lmbda): lmbda for lmbda in lmbdas}  # one row per file
        for label, lmbda in starts.items():
            model = initial_model(conf.model, seed=conf.seed, lmbda=lmbda)
            start = evaluate_coded(model, images)
            rows.append({"method": f"start ({label})", "lmbda": math.nan, **start})
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        rows.append({"method": summary["method"], "lmbda": summary["lmbda"], **summary["mean"]})
    curves = {codec: classic_curve(images, codec) for codec in CODECS}  # coded once
    for row in rows:
        for codec in CODECS:
            at = at_rate(curves[codec], row["real_bpp"])
            row[f"{codec}_psnr"], row[f"{codec}_ms_ssim"] = at["psnr"], at["ms_ssim"]
    return rows


def format_same_rate(rows: list[dict[str, Any]]) -> str:
    """The table and one line saying what it shows."""
    if not rows:
        return ""
    header = (
        f"{'method':>22} {'lmbda':>7} {'bpp':>6} {'PSNR':>6} {'MS-SSIM':>7} "
        f"{'JPEG PSNR':>9} {'WebP PSNR':>9}   (JPEG/WebP at the same bpp, same images)"
    )
    lines = [header]
    for r in rows:
        lmbda = "" if math.isnan(r["lmbda"]) else f"{r['lmbda']:.4f}"
        lines.append(
            f"{r['method']:>22} {lmbda:>7} {r['real_bpp']:6.3f} {r['psnr']:6.2f} "
            f"{r['ms_ssim']:7.4f} {r['JPEG_psnr']:9.2f} {r['WebP_psnr']:9.2f}"
        )
    return "\n".join([*lines, reading(rows)])


def reading(rows: list[dict[str, Any]]) -> str:
    """One sentence: the best run against JPEG and WebP, and against the starting point."""
    trained = [r for r in rows if not r["method"].startswith("start")]
    best = max(
        trained,
        key=lambda r: r["psnr"] - r["JPEG_psnr"] if not math.isnan(r["JPEG_psnr"]) else -math.inf,
    )

    def gap(a: float, b: float) -> str:
        return "n/a (outside its range)" if math.isnan(b) else f"{a - b:+.2f} dB"

    vs_jpeg, vs_webp = gap(best["psnr"], best["JPEG_psnr"]), gap(best["psnr"], best["WebP_psnr"])
    text = (
        f"Reading: {best['method']} at {best['real_bpp']:.3f} bpp is {vs_jpeg} vs JPEG and "
        f"{vs_webp} vs WebP at the same rate"
    )
    start = [r for r in rows if r["method"].startswith("start")]
    if start:
        s = start[0]
        text += (
            f"; the starting point alone gives {s['psnr']:.2f} dB at {s['real_bpp']:.3f} bpp "
            f"({gap(s['psnr'], s['JPEG_psnr'])} vs JPEG)"
        )
    return text + "."

"""The R–D curve of the shipped bases (one file per λ) against JPEG and WebP, per image set.

    python -m benchmarks.base_curve models/bmshj2018-factorized-N64-M96-l*.pt \
        --csv docs/data/base-curve.csv --bd-csv docs/data/base-curve-bd.csv \
        --plot docs/img/base-curve.png

Image sets as in ``benchmarks/base_vs_classic.py`` (bundled clients' test images, each
``fedimages`` client's test images, the pretraining validation photos). Every codec is
charged its whole file. Per set it prints each base's bpp/PSNR with JPEG's and WebP's PSNR at
that bpp, then the Bjøntegaard delta rate of the base curve against JPEG's and WebP's
(negative: the base needs less rate for the same PSNR) and where each point wins.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path
from typing import Any

import torch

from benchmarks.base_vs_classic import image_sets
from common.checkpoint import load_tensors
from common.evaluate import evaluate_coded
from common.init import load_model_file
from study.bd_rate import bd_rate
from study.classic import CODECS, classic_curves, codec_points
from study.plots import COLORS, save_figure
from study.same_rate import at_rate


def base_rows(
    paths: list[Path], sets: dict[str, list[torch.Tensor]], classic: dict[str, list[dict]]
) -> list[dict[str, Any]]:
    """One row per base file and image set: the base and JPEG/WebP (``classic``: each set's
    :func:`~study.classic.classic_curves`) at its rate."""
    rows = []
    curves = {(n, c): codec_points(points, c) for n, points in classic.items() for c in CODECS}
    lmbdas = {path: load_tensors(path)["meta"]["lmbda"] for path in paths}
    for path in sorted(paths, key=lmbdas.__getitem__):
        lmbda = lmbdas[path]
        model = load_model_file(path)
        for name, images in sets.items():
            m = evaluate_coded(model, images)
            rows.append(
                {
                    "model": path.name,
                    "lmbda": lmbda,
                    "set": name,
                    "images": len(images),
                    "bpp": m["real_bpp"],
                    "psnr": m["psnr"],
                    "ms_ssim": m["ms_ssim"],
                    "jpeg_psnr_same_bpp": at_rate(curves[name, "JPEG"], m["real_bpp"])["psnr"],
                    "webp_psnr_same_bpp": at_rate(curves[name, "WebP"], m["real_bpp"])["psnr"],
                }
            )
            r = rows[-1]
            print(
                f"{path.name:>42} {name:>28} {r['bpp']:6.3f} {r['psnr']:6.2f} "
                f"{r['jpeg_psnr_same_bpp']:6.2f} {r['webp_psnr_same_bpp']:6.2f}",
                flush=True,
            )
    return rows


def bd_rows(rows: list[dict[str, Any]], classic: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """Per set: BD-rate of the base curve against JPEG and WebP, and the points it wins."""
    out = []
    for name, points in classic.items():
        mine = sorted((r for r in rows if r["set"] == name), key=lambda r: r["bpp"])
        curve = ([r["bpp"] for r in mine], [r["psnr"] for r in mine])
        row: dict[str, Any] = {"set": name, "points": len(mine)}
        for codec in ("JPEG", "WebP"):
            ref = codec_points(points, codec)
            value, status = bd_rate(([p["real_bpp"] for p in ref], [p["psnr"] for p in ref]), curve)
            key = codec.lower()
            same = [r[f"{key}_psnr_same_bpp"] for r in mine]
            row[f"bd_rate_vs_{key}"] = value
            row[f"bd_status_vs_{key}"] = status
            row[f"wins_vs_{key}"] = sum(r["psnr"] > s for r, s in zip(mine, same, strict=True))
            low = [(r, s) for r, s in zip(mine, same, strict=True) if r["bpp"] <= 0.5]
            row[f"wins_vs_{key}_at_0.5bpp_or_less"] = (
                f"{sum(r['psnr'] > s for r, s in low)}/{len(low)}"
            )
        out.append(row)
        print(
            f"{name:>28}: BD-rate vs JPEG {row['bd_rate_vs_jpeg']:+.1f}% "
            f"({row['bd_status_vs_jpeg']}), vs WebP {row['bd_rate_vs_webp']:+.1f}% "
            f"({row['bd_status_vs_webp']}); beats JPEG at {row['wins_vs_jpeg']}/{len(mine)} "
            f"points, WebP at {row['wins_vs_webp_at_0.5bpp_or_less']} points <= 0.5 bpp"
        )
    return out


def plot(rows: list[dict[str, Any]], classic: dict[str, list[dict]], path: Path) -> None:
    """One panel per set: the base curve, JPEG and WebP, axes fitted to the base's range."""
    import matplotlib.pyplot as plt

    names = list(classic)
    cols = min(4, len(names))
    rows_ = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(4 * cols, 3.3 * rows_), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        mine = sorted((r for r in rows if r["set"] == name), key=lambda r: r["bpp"])
        ax.plot([r["bpp"] for r in mine], [r["psnr"] for r in mine], "o-", label="base", c="C0")
        for codec in ("JPEG", "WebP"):
            ref = codec_points(classic[name], codec)
            ax.plot(
                [p["real_bpp"] for p in ref],
                [p["psnr"] for p in ref],
                ".--",
                label=codec,
                c=COLORS[codec],
            )
        low, high = mine[0]["bpp"], mine[-1]["bpp"]
        ax.set_xlim(low * 0.7, high * 1.3)
        ax.set_ylim(min(r["psnr"] for r in mine) - 3, max(r["psnr"] for r in mine) + 2)
        ax.set_title(f"{name} ({mine[0]['images']} images)", fontsize=9)
        ax.set_xlabel("bits per pixel (whole files)")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, axes, path)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--bd-csv", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    sets = image_sets(args.max_side)
    print(f"{'model':>42} {'set':>28} {'bpp':>6} {'PSNR':>6} {'JPEG':>6} {'WebP':>6}")
    classic = {name: classic_curves(images) for name, images in sets.items()}  # coded once
    rows = base_rows(args.models, sets, classic)
    summary = bd_rows(rows, classic)
    for dest, table in ((args.csv, rows), (args.bd_csv, summary)):
        if dest:
            write_csv(table, dest)
    if args.plot:
        plot(rows, classic, args.plot)


if __name__ == "__main__":
    main()

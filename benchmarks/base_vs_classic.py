"""A model file (a base model or a CompressAI state dict) against JPEG and WebP, per image set.

    python benchmarks/base_vs_classic.py models/bmshj2018-factorized-N64-M96-l0.0067.pt \
        --csv docs/data/base-vs-classic.csv

Image sets: the bundled quick-start data (test images of its clients) and, when
``../shared/data`` exists, the test images of each ``fedimages`` client and the pretraining
validation photos. Every codec is charged its whole file. For each set it prints the model's
bpp/PSNR and JPEG's and WebP's PSNR at that same bpp (interpolated over quality), and the
best quality each classic codec reaches at or below that rate.
"""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

import torch

from common.config import DataConfig
from common.data import load_client_data
from common.data.images import list_images, load_images
from common.evaluate import evaluate_coded
from common.init import load_model_file
from study.same_rate import classic_at_rate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def image_sets(max_side: int) -> dict[str, list[torch.Tensor]]:
    """Name → uint8 images of every set this machine has."""
    bundled = DataConfig(source="bundled", max_side=max_side)
    sets = {"bundled": [im for c in range(4) for im in load_client_data(bundled, c, 0).test]}
    fed = SHARED / "fedimages"
    if fed.is_dir():
        conf = DataConfig(source="folder", root=str(fed), max_side=max_side)
        for client in range(4):
            data = load_client_data(conf, client, 0)
            sets[f"fedimages/{data.name}"] = data.test
        sets["fedimages (all)"] = [im for k, v in sets.items() if k.startswith("fed") for im in v]
    val = SHARED / "pretrain" / "val"
    if val.is_dir():
        sets["pretrain/val"] = load_images(list_images(val), max_side)
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--arch", default="bmshj2018-factorized")
    parser.add_argument("--max-side", type=int, default=512)
    parser.add_argument("--csv", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    sets = image_sets(args.max_side)
    rows = []
    print(f"{'model':>34} {'set':>28} {'bpp':>6} {'PSNR':>6} {'JPEG':>6} {'WebP':>6}")
    for path in args.models:
        model = load_model_file(path, args.arch)
        for name, images in sets.items():
            m = evaluate_coded(model, images)
            jpeg = classic_at_rate(images, "JPEG", m["real_bpp"])["psnr"]
            webp = classic_at_rate(images, "WebP", m["real_bpp"])["psnr"]
            row = {
                "model": path.name,
                "set": name,
                "images": len(images),
                "bpp": m["real_bpp"],
                "psnr": m["psnr"],
                "ms_ssim": m["ms_ssim"],
                "jpeg_psnr_same_bpp": jpeg,
                "webp_psnr_same_bpp": webp,
            }
            rows.append(row)

            def fmt(v: float) -> str:
                return "   n/a" if math.isnan(v) else f"{v:6.2f}"

            print(
                f"{path.name:>34} {name:>28} {m['real_bpp']:6.3f} {m['psnr']:6.2f} "
                f"{fmt(jpeg)} {fmt(webp)}",
                flush=True,
            )
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()

"""fedntc-codec: compress and decompress real files with a client's trained model.

Also ``evaluate`` (rate and quality per image) and ``adapt`` (onboard a new client).

    fedntc-codec compress   --run RUN --client 0 photo.png more/ -o out/
    fedntc-codec decompress --run RUN --client 0 out/ -o decoded/
    fedntc-codec evaluate   --run RUN --client 0 images/ --csv results.csv
    fedntc-codec adapt      --run RUN --images new-client/train --state-out new/personal.pt
    fedntc-codec compress --checkpoint models/bmshj2018-factorized-N64-M96-l0.0067.pt a.png -o out/
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import sys
from pathlib import Path

import torch
from compressai.models import CompressionModel
from PIL import Image
from tqdm import tqdm

from codec.adapt import adapt_entropy_model, reset_personal
from codec.trained import load_client_model
from common.bitstream import DEFAULT_MAX_PIXELS, BitstreamError
from common.checkpoint import atomic_write_bytes, atomic_write_csv
from common.coding import Codec, code_image, mean_results
from common.data import train_batches
from common.data.images import IMAGE_SUFFIXES, ImageLoadError, load_images, open_image
from common.init import load_model_file
from common.metrics import estimated_bits
from common.model import create_model
from common.run_folder import write_state_file

SUFFIX = ".fntc"


def expand(inputs: list[Path], suffixes: frozenset[str]) -> list[Path]:
    """Files as given, folders expanded to their matching files (sorted)."""
    files: list[Path] = []
    for path in inputs:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes)
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    if not files:
        raise FileNotFoundError(f"no input files in {[str(p) for p in inputs]}")
    return files


def unique_stems(files: list[Path]) -> None:
    """Refuse inputs whose outputs would overwrite each other (a.png and a.jpg)."""
    seen: dict[str, Path] = {}
    for path in files:
        if path.stem in seen:
            raise ValueError(f"{seen[path.stem]} and {path} would both be written as {path.stem}")
        seen[path.stem] = path


def targets(files: list[Path], folder: Path, suffix: str, overwrite: bool) -> list[Path]:
    """Output paths ``folder/<stem><suffix>``, refusing (before any work) inputs that would
    write the same output and, unless ``overwrite``, outputs that already exist."""
    unique_stems(files)
    paths = [folder / (path.stem + suffix) for path in files]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"would overwrite {existing[:3]} (pass --overwrite to replace)")
    return paths


def write_png(image: Image.Image, path: Path) -> None:
    """Save ``image`` as PNG atomically (a reader never sees a half-written file)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(buffer.getvalue(), path)


def load_codec(args: argparse.Namespace) -> Codec:
    """A run's global transforms with one client's entropy model, or (no ``--run``) a whole
    model file given by ``--checkpoint``: the shipped base model or a CompressAI state dict."""
    if args.run is None:
        if args.checkpoint is None or args.client is not None or args.state is not None:
            raise ValueError(
                "name a run (--run RUN --client K) or a model file alone (--checkpoint FILE)"
            )
        return Codec.from_model(load_model_file(args.checkpoint, args.arch), args.max_pixels)
    model, _, _ = load_client_model(args.run, args.client, args.state, args.checkpoint)
    return Codec.from_model(model, args.max_pixels)


def cmd_compress(args: argparse.Namespace) -> None:
    codec = load_codec(args)
    files = expand(args.inputs, IMAGE_SUFFIXES)
    outputs = targets(files, args.output, SUFFIX, args.overwrite)
    recons = targets(files, args.recon, ".png", args.overwrite) if args.recon else None
    for k, path in enumerate(tqdm(files, desc="compress", unit="img", disable=len(files) < 2)):
        data = codec.encode(open_image(path))
        atomic_write_bytes(data, outputs[k])
        if recons:
            write_png(codec.decode(data, str(path)), recons[k])


def cmd_decompress(args: argparse.Namespace) -> None:
    codec = load_codec(args)
    files = expand(args.inputs, frozenset({SUFFIX}))
    outputs = targets(files, args.output, ".png", args.overwrite)
    for path, out in zip(
        tqdm(files, desc="decompress", unit="file", disable=len(files) < 2), outputs, strict=True
    ):
        write_png(codec.decode(path.read_bytes(), source=str(path)), out)


def cmd_evaluate(args: argparse.Namespace) -> None:
    codec = load_codec(args)
    files = expand(args.inputs, IMAGE_SUFFIXES)
    results = [
        code_image(codec, open_image(path)).result
        for path in tqdm(files, desc="evaluate", unit="img", disable=len(files) < 2)
    ]
    rows = [
        {"image": path.name, **dataclasses.asdict(r)}
        for path, r in zip(files, results, strict=True)
    ]
    mean = {"image": "mean (pixel-weighted)", **mean_results(results)}
    mean["pixels"], mean["bytes"] = mean.pop("num_pixels"), sum(r.bytes for r in results)
    print(f"{'image':>24} {'real bpp':>9} {'est bpp':>9} {'PSNR dB':>8} {'MS-SSIM':>8}")
    for r in [*rows, mean]:
        print(
            f"{str(r['image'])[-24:]:>24} {r['real_bpp']:9.4f} {r['est_bpp']:9.4f} "
            f"{r['psnr']:8.2f} {r['ms_ssim']:8.4f}"
        )
    if args.csv:
        atomic_write_csv([*rows, mean], args.csv)


def cmd_adapt(args: argparse.Namespace) -> None:
    model, conf, split = load_client_model(args.run, args.client, args.state, args.checkpoint)
    if args.init == "fresh":
        reset_personal(model, split, create_model(conf.model, seed=conf.seed))
    images = load_images(expand([args.images], IMAGE_SUFFIXES), conf.data.max_side)
    batches = train_batches(images, args.crop or conf.data.crop_size, conf.data.batch_size, 0)
    target = None
    if args.reference_client is not None:
        reference, _, _ = load_client_model(args.run, args.reference_client, None, args.checkpoint)
        target = mean_estimated_bpp(reference, images)
        print(f"reference client {args.reference_client}: estimated bpp {target:.4f}")
    reached: list[int] = []

    def monitor(step: int) -> None:
        bpp = mean_estimated_bpp(model, images)
        close = target is not None and bpp <= 1.02 * target
        if close and not reached:
            reached.append(step)
        print(f"step {step:6d}: estimated bpp {bpp:.4f}" + ("  (within 2%)" if close else ""))

    adapt_conf = dataclasses.replace(
        conf.train, local_steps=args.steps, lr=args.lr, lmbda=args.lmbda or conf.train.lmbda
    )
    adapt_entropy_model(
        model, split, batches, adapt_conf, monitor=monitor, monitor_every=args.eval_every
    )
    write_state_file(args.state_out, split.personal_state(model.state_dict()), conf.model, 0)
    if target is not None:
        print(
            f"steps to within 2% of the reference rate: {reached[0] if reached else 'not reached'}"
        )
    print(f"saved {args.state_out}")


@torch.no_grad()
def mean_estimated_bpp(model: CompressionModel, images: list[torch.Tensor]) -> float:
    """Pixel-weighted estimated bpp of ``model`` (eval mode) on uint8 images."""
    model.eval()
    bits = sum(estimated_bits(model, image.float().div(255).unsqueeze(0)) for image in images)
    return bits / sum(image.shape[-2] * image.shape[-1] for image in images)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="fedntc-codec", description=__doc__.splitlines()[0])
    sub = main.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--run", type=Path, help="run directory of a training run")
        who = p.add_mutually_exclusive_group()
        who.add_argument("--client", type=int, help="client id whose personal model to use")
        who.add_argument("--state", type=Path, help="a personal state file (personal.pt)")
        p.add_argument(
            "--checkpoint",
            type=Path,
            help="with --run: shared weights of a round (default: the last); alone: a whole "
            "model file (models/*.pt, or a CompressAI state dict of --arch)",
        )
        p.add_argument(
            "--arch", default="bmshj2018-factorized", help="architecture of a plain state dict"
        )
        p.add_argument(
            "--max-pixels",
            type=int,
            default=DEFAULT_MAX_PIXELS,
            help="largest image (width x height) read or decoded; default %(default)s, Pillow's",
        )
        return p

    p = add("compress", "image files or folders -> .fntc bitstreams")
    p.add_argument("inputs", nargs="+", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--recon", type=Path, help="also write the decoder's reconstructions here")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_compress)

    p = add("decompress", ".fntc files or folders -> PNG")
    p.add_argument("inputs", nargs="+", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.set_defaults(func=cmd_decompress)

    p = add("evaluate", "real bpp, estimated bpp, PSNR and MS-SSIM per image and mean")
    p.add_argument("inputs", nargs="+", type=Path)
    p.add_argument("--csv", type=Path, help="write the per-image table as CSV")
    p.set_defaults(func=cmd_evaluate)

    p = add("adapt", "fit a new client's entropy model on its images, transforms frozen")
    p.add_argument("--images", type=Path, required=True, help="the new client's image folder")
    p.add_argument("--state-out", type=Path, required=True, help="where to save personal.pt")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--lmbda", type=float, default=0.0, help="default: the run's lmbda")
    p.add_argument("--crop", type=int, default=0, help="default: the run's crop size")
    p.add_argument(
        "--init",
        choices=("fresh", "client"),
        default="fresh",
        help="start from an untrained entropy model, or from --client's",
    )
    p.add_argument(
        "--reference-client",
        type=int,
        help="report the step at which the rate is within 2%% of this client's",
    )
    p.add_argument("--eval-every", type=int, default=50, help="print the rate every N steps")
    p.set_defaults(func=cmd_adapt)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "adapt" and args.run is None:
        print(
            "fedntc-codec adapt: error: adapt needs --run (its frozen transforms)", file=sys.stderr
        )
        return 2
    if args.command == "adapt" and args.client is None and args.state is None:
        args.client = 0  # any trained client: only its shared transforms are used
    if args.max_pixels < 1:
        print(f"fedntc-codec {args.command}: error: --max-pixels must be >= 1", file=sys.stderr)
        return 2
    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, args.max_pixels  # for inputs
    try:
        args.func(args)
    except (BitstreamError, ImageLoadError, OSError, ValueError) as err:
        print(f"fedntc-codec {args.command}: error: {err}", file=sys.stderr)
        return 2
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training-step time of a base-size model under each precision, as ratios in one run.

    python benchmarks/pretrain_step.py --N 64 --M 96 --batch 8 --crop 128 --steps 20

Settings: fp32 (contiguous), fp32 + channels-last, bf16 (transforms in bf16 autocast,
entropy model fp32, channels-last) and, with --compile, bf16 + torch.compile.
"""

from __future__ import annotations

import argparse
import time

import torch
from compressai.losses import RateDistortionLoss

from common.config import ModelConfig, TrainConfig
from common.model import create_model
from common.train import make_optimizers, prepare_for_training, rd_step


def step_time(args, precision: str, channels_last: bool, compiled: bool = False) -> float:
    torch.manual_seed(0)
    model = create_model(ModelConfig(N=args.N, M=args.M), seed=0)
    prepare_for_training(model, torch.device("cpu"), precision)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    criterion = RateDistortionLoss(lmbda=0.0067)
    optimizers = make_optimizers(model, TrainConfig())
    net = torch.compile(model) if compiled else model
    net.aux_loss = model.aux_loss
    x = torch.rand(args.batch, 3, args.crop, args.crop).contiguous(memory_format=fmt)
    for _ in range(3):
        rd_step(net, x, criterion, optimizers, 1.0, precision)
    start = time.perf_counter()
    for _ in range(args.steps):
        rd_step(net, x, criterion, optimizers, 1.0, precision)
    return (time.perf_counter() - start) / args.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--N", type=int, default=64)
    parser.add_argument("--M", type=int, default=96)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    print(
        f"N={args.N} M={args.M} batch {args.batch} of {args.crop}x{args.crop}, "
        f"{torch.get_num_threads()} threads"
    )
    settings = [("fp32", False, False), ("fp32", True, False), ("bf16", True, False)]
    if args.compile:
        settings.append(("bf16", True, True))
    base = None
    for precision, channels_last, compiled in settings:
        seconds = step_time(args, precision, channels_last, compiled)
        base = base or seconds
        name = (
            precision
            + (" channels-last" if channels_last else "")
            + (" compile" if compiled else "")
        )
        print(f"{name:28s} {seconds * 1000:7.1f} ms/step  speed-up x{base / seconds:.2f}")


if __name__ == "__main__":
    main()

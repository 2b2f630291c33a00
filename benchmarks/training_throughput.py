"""Training throughput: a plain single-process loop vs the same steps inside a Flower
simulation, measured in one invocation; plus what threads and channels-last change.

    python benchmarks/training_throughput.py [--steps 100]

Model: factorized prior N=32, M=48; batches of 8 random 64x64 crops of the bundled images.
Also: the same loop with the model's forward compiled by ``torch.compile`` (1 thread).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from common.config import DataConfig, ModelConfig, TrainConfig
from common.data import load_client_data, train_batches
from common.model import create_model
from common.train import train_steps
from launch.simulate import CONF_DIR, run_simulation


def plain_loop(
    steps: int, threads: int, channels_last: bool = False, compiled: bool = False
) -> float:
    """Images per second of ``train_steps`` in this process (``compiled``: the model's
    forward through ``torch.compile``; its compile time is printed, not counted)."""
    torch.set_num_threads(threads)
    images = load_client_data(DataConfig(), 0, seed=0).train
    model = create_model(ModelConfig(), seed=0)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compiled:
        model.forward = torch.compile(model.forward)
    batches = train_batches(images, 64, 8, seed=0)
    if channels_last:
        batches = (b.contiguous(memory_format=torch.channels_last) for b in batches)
    conf = TrainConfig(local_steps=5)
    start = time.perf_counter()
    train_steps(model, batches, conf, torch.device("cpu"))  # warm-up (and compilation)
    if compiled:
        print(f"torch.compile + 5 warm-up steps: {time.perf_counter() - start:.0f} s")
    conf = TrainConfig(local_steps=steps)
    start = time.perf_counter()
    train_steps(model, batches, conf, torch.device("cpu"))
    return steps * 8 / (time.perf_counter() - start)


def in_flower(steps: int) -> float:
    """Mean images/s the clients report inside a 2-client Ray simulation (1 CPU each)."""
    out = Path(tempfile.mkdtemp(prefix="fedntc-throughput-"))
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                "data.num_clients=2",
                "num_rounds=2",
                f"train.local_steps={steps}",
                "train.device=cpu",
                "data.test_max_images=1",
            ],
        )
    run_simulation(cfg, out)
    with (out / "train.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["round"] == "2"]
    return statistics.fmean(float(r["images-per-second"]) for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    one = plain_loop(args.steps, threads=1)
    flower = in_flower(args.steps)
    two = plain_loop(args.steps, threads=2)
    two_cl = plain_loop(args.steps, threads=2, channels_last=True)
    one_compiled = plain_loop(args.steps, threads=1, compiled=True)
    print(f"plain loop, 1 thread:                  {one:7.1f} images/s")
    print(f"inside Flower simulation (1 CPU/client, 2 clients at once): {flower:7.1f} images/s")
    print(f"ratio Flower / plain (1 thread):       {flower / one:7.2f}")
    print(f"plain loop, 2 threads:                 {two:7.1f} images/s")
    print(f"plain loop, 2 threads, channels-last:  {two_cl:7.1f} images/s")
    print(f"plain loop, 1 thread, torch.compile:   {one_compiled:7.1f} images/s")


if __name__ == "__main__":
    main()

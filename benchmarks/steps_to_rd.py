"""How many local steps until an image model's PSNR moves with λ? One client, no Flower.

    python benchmarks/steps_to_rd.py --root ../shared/data/fedimages --client 2 \
        --lmbda 0.0018 0.05 --steps 6000 --every 1000 [--decay-at 5000]

Trains one model per λ on one client's crops (the Flower clients' own loop, `train_steps`),
and every ``--every`` steps prints the test images' estimated bpp and PSNR (forward pass with
rounding, all test images of the client). As in a Flower client, the optimizer starts afresh
every ``--local-steps`` steps (one round). ``--decay-at`` drops the lr ×0.1 from the first
round that starts at or after that step, like ``train.lr_decay_rounds``. Without ``--root``
it uses the bundled images.
"""

from __future__ import annotations

import argparse
import time

import torch

from common.config import DataConfig, ModelConfig, TrainConfig
from common.data import load_client_data, train_batches
from common.metrics import psnr
from common.model import create_model, pad_to, stride
from common.train import train_steps


def test_point(model: torch.nn.Module, images: list[torch.Tensor]) -> tuple[float, float]:
    """Estimated bits per pixel and mean PSNR over ``images`` (eval mode, rounding)."""
    model.eval()
    bits, pixels, psnrs = 0.0, 0, []
    with torch.no_grad():
        for image in images:
            x = image.float().div(255).unsqueeze(0)
            padded, _ = pad_to(x, stride(model))
            out = model(padded)
            bits += sum(float(-torch.log2(p).sum()) for p in out["likelihoods"].values())
            pixels += x.shape[2] * x.shape[3]
            psnrs.append(psnr(x, out["x_hat"][..., : x.shape[2], : x.shape[3]]))
    return bits / pixels, sum(psnrs) / len(psnrs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="", help="folder of client folders (default: bundled)")
    parser.add_argument("--client", type=int, default=0)
    parser.add_argument("--lmbda", type=float, nargs="+", default=[0.0018, 0.05])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=500, help="evaluate every N steps")
    parser.add_argument("--local-steps", type=int, default=50, help="steps per round (optimizer)")
    parser.add_argument("--decay-at", type=int, default=0, help="step of the lr drop (0: none)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--N", type=int, default=32)
    parser.add_argument("--M", type=int, default=48)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data_conf = DataConfig(
        source="folder" if args.root else "bundled",
        root=args.root,
        crop_size=args.crop,
        batch_size=args.batch,
    )
    data = load_client_data(data_conf, args.client, seed=0)
    print(f"client {data.name}: {len(data.train)} train / {len(data.test)} test images")
    for lmbda in args.lmbda:
        model = create_model(ModelConfig(N=args.N, M=args.M), seed=0)
        batches = train_batches(data.train, args.crop, args.batch, seed=0)
        done, started = 0, time.perf_counter()
        while done < args.steps:
            # like a Flower client: a fresh optimizer every `--local-steps` (one round)
            lr = args.lr * (0.1 if args.decay_at and done >= args.decay_at else 1.0)
            steps = min(args.local_steps, args.steps - done)
            conf = TrainConfig(lmbda=lmbda, lr=lr, local_steps=steps)
            logs = train_steps(model, batches, conf, torch.device("cpu"))
            done += steps
            if done % args.every and done < args.steps:
                continue
            bpp, psnr = test_point(model, data.test)
            print(
                f"λ={lmbda:<7g} step {done:6d}  lr {lr:.0e}  train loss {logs['loss']:8.3f}  "
                f"test {bpp:.3f} bpp {psnr:5.2f} dB  ({time.perf_counter() - started:5.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()

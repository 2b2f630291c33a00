"""Codec throughput on CPU: fedntc's Codec vs CompressAI's compress/decompress, same model.

    python benchmarks/codec_throughput.py [--run RUN --client 0] [--size 512] [--repeats 5]

Without --run an untrained factorized model (N=32, M=48) is used. Prints megapixels/s for
encode and decode, the overhead ratio, and file bytes vs the model's estimated bits.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata

from common.coding import Codec, image_to_tensor
from common.config import ModelConfig
from common.metrics import estimated_bits
from common.model import create_model, pad_to, stride


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path)
    parser.add_argument("--client", type=int, default=0)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.run:
        from codec.trained import load_client_model

        model, _, _ = load_client_model(args.run, args.client)
    else:
        model = create_model(ModelConfig(N=32, M=48), seed=0)
    codec = Codec.from_model(model)
    image = Image.fromarray(skdata.astronaut()).resize((args.size, args.size))
    x, _ = image_to_tensor(image)
    x_padded, _ = pad_to(x, stride(model))
    megapixels = args.size * args.size / 1e6

    with torch.no_grad():
        encoded = model.compress(x_padded)
        t_ca_enc = best_of(lambda: model.compress(x_padded), args.repeats)
        t_ca_dec = best_of(
            lambda: model.decompress(encoded["strings"], encoded["shape"]), args.repeats
        )
    data = codec.encode(image)
    t_enc = best_of(lambda: codec.encode(image), args.repeats)
    t_dec = best_of(lambda: codec.decode(data), args.repeats)
    est_bits = estimated_bits(model, x)
    payload = sum(len(s) for group in encoded["strings"] for s in group)

    print(f"image {args.size}x{args.size}, {args.threads} threads, best of {args.repeats}")
    print(f"{'':>14} {'encode MP/s':>12} {'decode MP/s':>12}")
    print(f"{'compressai':>14} {megapixels / t_ca_enc:12.2f} {megapixels / t_ca_dec:12.2f}")
    print(f"{'fedntc codec':>14} {megapixels / t_enc:12.2f} {megapixels / t_dec:12.2f}")
    print(
        f"overhead ratio (fedntc / compressai time): encode {t_enc / t_ca_enc:.3f}, "
        f"decode {t_dec / t_ca_dec:.3f}"
    )
    print(
        f"file {len(data)} B = payload {payload} B + header/framing {len(data) - payload} B; "
        f"estimated {est_bits / 8:.0f} B; file/estimate = {len(data) * 8 / est_bits:.4f}"
    )
    assert np.asarray(codec.decode(data)).shape[:2] == (args.size, args.size)


if __name__ == "__main__":
    main()

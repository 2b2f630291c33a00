"""Evaluation with real entropy coding: actual bitstreams, decoded and measured.

For every test image: code it to a whole fedntc file and decode it
(:func:`common.coding.code_image`), and compare with the input. Real bpp counts the bytes of
the whole fedntc file (header, strings, CRC), as classic codecs are charged for their whole
files; estimated bpp comes from the model's likelihoods on the same image. Entropy
coding runs on the CPU so bitstreams do not depend on a GPU's floating-point behaviour.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.models import CompressionModel

from .coding import Codec, evaluate_images
from .metrics import psnr_from_mse
from .vector_model import as_strip, from_strip


def evaluate_coded(model: CompressionModel, images: list[torch.Tensor]) -> dict[str, float]:
    """Pixel-weighted real/estimated bpp, PSNR (from the mean MSE) and MS-SSIM of ``model``
    over uint8 ``[3, H, W]`` images, each coded to a whole fedntc file and decoded.

    Moves the model to the CPU and rebuilds its coding tables (``update(force=True)``).
    """
    return evaluate_images(Codec.from_model(model), images)


@torch.no_grad()
def evaluate_vectors(model: CompressionModel, vectors: list[torch.Tensor]) -> dict[str, float]:
    """Code all test vectors as one bitstream; the same keys as :func:`evaluate_coded`, per
    vector: ``real_bpp``/``est_bpp`` are bits per vector, ``psnr`` is ``-10 log10`` of the MSE
    per dimension (no peak value: the data is not bounded), ``ms_ssim`` is NaN."""
    if not vectors:
        raise ValueError("no test vectors to evaluate")
    model.to("cpu").eval()
    model.update(force=True)
    x = as_strip(torch.stack(vectors))
    encoded = model.compress(x)
    num_bytes = sum(len(s) for strings in encoded["strings"] for s in strings)
    x_hat = model.decompress(encoded["strings"], encoded["shape"])["x_hat"]
    bits = sum(-torch.log2(lk).sum().item() for lk in model(x)["likelihoods"].values())
    count = len(vectors)
    return {
        "real_bpp": num_bytes * 8 / count,
        "est_bpp": bits / count,
        "mse": (mse := F.mse_loss(from_strip(x_hat), from_strip(x)).item()),
        "psnr": psnr_from_mse(mse),
        "ms_ssim": float("nan"),
        "num_pixels": float(count),
    }


def evaluate_client(
    model: CompressionModel, test: list[torch.Tensor], kind: str
) -> dict[str, float]:
    """:func:`evaluate_vectors` for vector data, :func:`evaluate_coded` for images."""
    return evaluate_vectors(model, test) if kind == "vectors" else evaluate_coded(model, test)

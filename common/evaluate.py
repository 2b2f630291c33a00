"""Evaluation with real entropy coding: actual bitstreams, decoded and measured.

For every test image: pad to the model's stride, ``compress`` to CompressAI strings,
``decompress`` them, crop back, and compare with the input. Real bpp counts the bytes of
the whole fedntc file (header, strings, CRC), as classic codecs are charged for their whole
files; estimated bpp comes from the model's likelihoods on the same image. Entropy
coding runs on the CPU so bitstreams do not depend on a GPU's floating-point behaviour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from compressai.models import CompressionModel
from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

from common.bitstream import FINGERPRINT_BYTES, Bitstream

from .model import stride
from .vector_model import as_strip, from_strip

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WIN_SIZE = 11


@dataclass
class ImageResult:
    """Measurements of one coded image."""

    pixels: int
    real_bpp: float
    est_bpp: float
    psnr: float
    ms_ssim: float


def pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Replicate-pad ``x`` ``[N, C, H, W]`` on the right/bottom to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    pad = (0, (-w) % multiple, 0, (-h) % multiple)
    return F.pad(x, pad, mode="replicate"), pad


def psnr(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """PSNR in dB for images in [0, 1]."""
    return psnr_from_mse(F.mse_loss(x_hat.clamp(0, 1), x).item())


def multiscale_ssim(x: torch.Tensor, x_hat: torch.Tensor) -> float:
    """MS-SSIM (Wang et al. 2003) with as many of the 5 standard scales as the image size
    allows (weights renormalised); NaN below one 11x11 window."""
    side = min(x.shape[-2:])
    scales = len(MS_SSIM_WEIGHTS)
    while scales > 0 and not _fits(side, scales):
        scales -= 1
    if scales == 0:
        return float("nan")
    betas = MS_SSIM_WEIGHTS[:scales]
    betas = tuple(b / sum(betas) for b in betas)
    value = multiscale_structural_similarity_index_measure(
        x_hat.clamp(0, 1), x, data_range=1.0, betas=betas, normalize="relu"
    )
    return float(value)


def _fits(side: int, scales: int) -> bool:
    """torchmetrics' size rule for MS-SSIM with ``scales`` scales and an 11x11 window."""
    return side >= 2**scales and side // max(1, scales - 1) ** 2 > WIN_SIZE - 1


@torch.no_grad()
def estimated_bits(model: CompressionModel, x: torch.Tensor) -> float:
    """Bits the model's likelihoods assign to ``x`` ``[1, 3, H, W]`` (padded to its stride)."""
    x_padded, _ = pad_to(x, stride(model))
    likelihoods = model(x_padded)["likelihoods"]
    return sum(-torch.log2(lk).sum().item() for lk in likelihoods.values())


@torch.no_grad()
def code_image(model: CompressionModel, image: torch.Tensor) -> tuple[ImageResult, torch.Tensor]:
    """Compress and decompress one uint8 ``[3, H, W]`` image; return metrics and ``x_hat``.

    The model must be on the CPU, in eval mode, with ``update(force=True)`` done.
    """
    x = image.float().div(255.0).unsqueeze(0)
    h, w = x.shape[-2:]
    x_padded, (_, pad_w, _, pad_h) = pad_to(x, stride(model))
    encoded = model.compress(x_padded)
    file = Bitstream(  # the whole fedntc file, as JPEG and WebP are charged their whole files
        fingerprint=bytes(FINGERPRINT_BYTES),
        height=h,
        width=w,
        mode="RGB",
        pad_h=pad_h,
        pad_w=pad_w,
        shape=tuple(int(s) for s in encoded["shape"]),
        strings=[list(group) for group in encoded["strings"]],
    )
    num_bytes = len(file.to_bytes())
    x_hat = model.decompress(encoded["strings"], encoded["shape"])["x_hat"][..., :h, :w]
    est_bits = estimated_bits(model, x)
    pixels = h * w
    result = ImageResult(
        pixels=pixels,
        real_bpp=num_bytes * 8 / pixels,
        est_bpp=est_bits / pixels,
        psnr=psnr(x, x_hat),
        ms_ssim=multiscale_ssim(x, x_hat),
    )
    return result, x_hat.clamp(0, 1)


def evaluate_coded(model: CompressionModel, images: list[torch.Tensor]) -> dict[str, float]:
    """Pixel-weighted means over ``images`` of real/estimated bpp, PSNR and MS-SSIM.

    Moves the model to the CPU and rebuilds its coding tables (``update(force=True)``).
    """
    if not images:
        raise ValueError("no test images to evaluate")
    model.to("cpu").eval()
    model.update(force=True)
    results = [code_image(model, image)[0] for image in images]
    total = sum(r.pixels for r in results)

    def mean(attr: str) -> float:
        return sum(getattr(r, attr) * r.pixels for r in results) / total

    return {
        "real_bpp": mean("real_bpp"),
        "est_bpp": mean("est_bpp"),
        "psnr": mean("psnr"),
        "ms_ssim": mean("ms_ssim"),
        "num_pixels": float(total),
    }


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error on [0, 1] images."""
    return float("inf") if mse <= 0 else -10 * math.log10(mse)


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
        "psnr": psnr_from_mse(F.mse_loss(from_strip(x_hat), from_strip(x)).item()),
        "ms_ssim": float("nan"),
        "num_pixels": float(count),
    }


def evaluate_client(
    model: CompressionModel, test: list[torch.Tensor], kind: str
) -> dict[str, float]:
    """:func:`evaluate_vectors` for vector data, :func:`evaluate_coded` for images."""
    return evaluate_vectors(model, test) if kind == "vectors" else evaluate_coded(model, test)

"""Distortion and rate measures: PSNR, MS-SSIM, and the rate a model's likelihoods assign."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from compressai.models import CompressionModel

from .model import pad_to, stride

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WIN_SIZE = 11


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of a mean squared error on [0, 1] images."""
    return float("inf") if mse <= 0 else -10 * math.log10(mse)


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
    # imported here: torchmetrics (and the matplotlib it pulls in) costs every ClientApp
    # process ~0.5 s at start-up, and only image evaluation needs it
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

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

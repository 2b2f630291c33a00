"""Classic codecs through Pillow (JPEG, WebP) on the same images, for context on R–D plots."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from common.evaluate import multiscale_ssim, psnr

CODECS = {"JPEG": "JPEG", "WebP": "WEBP"}
QUALITIES = (5, 10, 20, 30, 50, 70, 85, 95)


def classic_point(images: list[torch.Tensor], codec: str, quality: int) -> dict[str, float]:
    """Pixel-weighted bpp, PSNR and MS-SSIM of one codec at one quality on uint8 images."""
    bits = pixels = psnr_sum = ssim_sum = 0.0
    for image in images:
        array = image.permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format=CODECS[codec], quality=quality)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        x = image.float().div(255).unsqueeze(0)
        x_hat = torch.from_numpy(decoded.copy()).permute(2, 0, 1).float().div(255).unsqueeze(0)
        n = image.shape[1] * image.shape[2]
        bits += len(buffer.getvalue()) * 8
        pixels += n
        psnr_sum += psnr(x, x_hat) * n
        ssim_sum += multiscale_ssim(x, x_hat) * n
    return {"real_bpp": bits / pixels, "psnr": psnr_sum / pixels, "ms_ssim": ssim_sum / pixels}


def classic_curves(images: list[torch.Tensor]) -> list[dict[str, float | str]]:
    """Every codec at every quality in :data:`QUALITIES`."""
    return [
        {"method": codec, "quality": q, **classic_point(images, codec, q)}
        for codec in CODECS
        for q in QUALITIES
    ]

"""Classic codecs through Pillow (JPEG, WebP) on the same images, for context on R–D plots.

Each point is :func:`common.coding.evaluate_images` with a :class:`~common.coding.PillowCodec`:
the same function that measures the learned codec, charging whole files.
"""

from __future__ import annotations

import torch

from common.coding import PillowCodec, evaluate_image_sets, evaluate_images

CODECS = {"JPEG": "JPEG", "WebP": "WEBP"}
QUALITIES = (2, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)


def classic_point(images: list[torch.Tensor], codec: str, quality: int) -> dict[str, float]:
    """Pixel-weighted bpp, PSNR (from the mean MSE) and MS-SSIM of one codec at one quality."""
    return evaluate_images(PillowCodec(CODECS[codec], quality), images)


def classic_curves(images: list[torch.Tensor]) -> list[dict[str, float | str]]:
    """Every codec at every quality in :data:`QUALITIES`."""
    return [
        {"method": codec, "quality": q, **classic_point(images, codec, q)}
        for codec in CODECS
        for q in QUALITIES
    ]


def classic_set_curves(sets: dict[str, list[torch.Tensor]]) -> list[dict[str, float | str]]:
    """:func:`classic_curves` of each named image set and of all of them pooled (``"mean"``),
    as rows with a ``client`` key, set by set; each distinct image is coded once per point."""
    points = {
        (codec, q): evaluate_image_sets(PillowCodec(CODECS[codec], q), sets)
        for codec in CODECS
        for q in QUALITIES
    }
    return [
        {"client": name, "method": codec, "quality": q, **means[name]}
        for name in [*sets, "mean"]
        for (codec, q), means in points.items()
    ]


def codec_points(rows: list[dict], codec: str, client: str | None = None) -> list[dict]:
    """The rows of ``codec`` (of ``client``, if given) from :func:`classic_curves` rows, by rate."""
    chosen = (r for r in rows if r["method"] == codec and client in (None, r.get("client")))
    return sorted(chosen, key=lambda r: r["real_bpp"])

"""Classic codecs through Pillow (JPEG, WebP) on the same images, for context on R–D plots.

Each point is :func:`common.coding.code_image` with a :class:`~common.coding.PillowCodec`:
the same function that measures the learned codec, charging whole files.

Coding is cheap but MS-SSIM is not (26 points per image, 0.2 s each for a 512x512 image on
two idle cores, over a second on busy ones), so each image's points are kept on disk, one
JSON file per image under ``<fedntc home>/cache/classic/<versions>/<image digest>.json``: a
report on new clients, seeds or splits of images measured before reads them instead of
coding them again. The folder is named by the Pillow, torch and torchmetrics versions that
produced the figures.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Iterable
from importlib.metadata import version
from pathlib import Path

import torch
from PIL import __version__ as pillow_version

from common.checkpoint import atomic_write_text
from common.coding import (
    ImageResult,
    PillowCodec,
    code_image,
    image_digest,
    mean_results,
    pooled_set_means,
)
from common.run_folder import fedntc_home

CODECS = {"JPEG": "JPEG", "WebP": "WEBP"}
QUALITIES = (2, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95)
POINTS = tuple((codec, q) for codec in CODECS for q in QUALITIES)
CACHE_FORMAT = 1

Point = tuple[str, int]  # (codec name of CODECS, quality)


def cache_dir() -> Path:
    """Where measured points are kept, named by the versions that measure them."""
    versions = (
        f"v{CACHE_FORMAT}-pillow{pillow_version}-torch{torch.__version__}"
        f"-torchmetrics{version('torchmetrics')}"
    )
    return fedntc_home() / "cache" / "classic" / versions.replace("+", "_")


def image_points(image: torch.Tensor, points: Iterable[Point]) -> dict[Point, ImageResult]:
    """Each (codec, quality) point of one uint8 ``[3, H, W]`` image: read from its cache
    file, the missing ones coded with :func:`code_image` and added to it (one atomic write)."""
    path = cache_dir() / f"{image_digest(image)}.json"
    stored = _read(path)
    wanted = list(points)
    missing = [p for p in wanted if _key(p) not in stored]
    for codec, quality in missing:
        result = code_image(PillowCodec(CODECS[codec], quality), image).result
        stored[_key((codec, quality))] = dataclasses.asdict(result)
    if missing:
        atomic_write_text(json.dumps(stored, sort_keys=True), path)
    return {p: ImageResult(**stored[_key(p)]) for p in wanted}


def classic_point(images: list[torch.Tensor], codec: str, quality: int) -> dict[str, float]:
    """Pixel-weighted bpp, PSNR (from the mean MSE) and MS-SSIM of one codec at one quality."""
    point = (codec, quality)
    return mean_results([image_points(image, [point])[point] for image in images])


def classic_curves(images: list[torch.Tensor]) -> list[dict[str, float | str]]:
    """Every codec at every quality in :data:`QUALITIES`."""
    measured = [image_points(image, POINTS) for image in images]
    return [
        {"method": codec, "quality": q, **mean_results([m[(codec, q)] for m in measured])}
        for codec, q in POINTS
    ]


def classic_set_curves(sets: dict[str, list[torch.Tensor]]) -> list[dict[str, float | str]]:
    """:func:`classic_curves` of each named image set and of all of them pooled (``"mean"``),
    as rows with a ``client`` key, set by set; each distinct image's points are read or coded
    once (:func:`image_points`)."""
    curves = pooled_set_means(sets, lambda image: image_points(image, POINTS))
    return [
        {"client": name, "method": codec, "quality": q, **means[name]}
        for name in [*sets, "mean"]
        for (codec, q), means in curves.items()
    ]


def codec_points(rows: list[dict], codec: str, client: str | None = None) -> list[dict]:
    """The rows of ``codec`` (of ``client``, if given) from :func:`classic_curves` rows, by rate."""
    chosen = (r for r in rows if r["method"] == codec and client in (None, r.get("client")))
    return sorted(chosen, key=lambda r: r["real_bpp"])


def _key(point: Point) -> str:
    return f"{point[0]}/q{point[1]}"


def _read(path: Path) -> dict[str, dict]:
    """A cache file's points; an unreadable one is reported and measured again."""
    if not path.exists():
        return {}
    try:
        stored = json.loads(path.read_text())
        for fields in stored.values():
            ImageResult(**fields)
        return stored
    except (OSError, ValueError, TypeError, AttributeError) as err:
        warnings.warn(f"ignoring unreadable classic-codec cache file {path}: {err}", stacklevel=2)
        return {}

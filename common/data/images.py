"""Reading image files into tensors, with errors that name the file at fault."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

GRAYSCALE_MODES = frozenset({"1", "L", "I", "I;16", "I;16B", "F"})
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)


class ImageLoadError(ValueError):
    """An image file could not be read or decoded."""


def to_rgb(image: Image.Image) -> Image.Image:
    """Grayscale is replicated to three channels; RGBA/LA drop alpha; palettes expand."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        span = max(array.max() - array.min(), 1e-12)
        image = Image.fromarray(((array - array.min()) / span * 255).round().astype(np.uint8))
    return image.convert("RGB")


def open_image(path: Path) -> Image.Image:
    """Read ``path`` fully into memory as a PIL image (any mode).

    Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``, which
    ``fedntc-codec --max-pixels`` sets) applies: an image over it fails here, naming the
    file, before its pixels are decoded.
    """
    try:
        with warnings.catch_warnings():  # over the limit fails below, with the file's name
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)
        with opened:
            pixels = opened.width * opened.height
            limit = Image.MAX_IMAGE_PIXELS
            if limit and pixels > limit:
                raise ImageLoadError(
                    f"image {path} has {opened.width}x{opened.height} = {pixels} pixels, over "
                    f"the limit of {limit} (fedntc-codec --max-pixels)"
                )
            opened.load()
            return opened.copy()
    except Image.DecompressionBombError as err:
        raise ImageLoadError(f"image {path}: {err} (fedntc-codec --max-pixels)") from err
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise ImageLoadError(f"cannot read image {path}: {err}") from err


def load_image(path: Path, max_side: int = 0) -> torch.Tensor:
    """Read ``path`` as a ``uint8`` tensor ``[3, H, W]``.

    Args:
        path: image file.
        max_side: if > 0, downscale (Lanczos) so the longer side is at most this.
    """
    image = to_rgb(open_image(path))
    if max_side > 0 and max(image.size) > max_side:
        scale = max_side / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (sorted); raises if there is none."""
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"image folder {folder} holds no images ({sorted(IMAGE_SUFFIXES)})")
    return files


def load_images(paths: list[Path], max_side: int = 0) -> list[torch.Tensor]:
    """Load every path; the first unreadable file raises :class:`ImageLoadError`."""
    return [load_image(p, max_side) for p in paths]

"""Coding one image, for every codec the project measures: files in, bytes out, and back.

:class:`Codec` is the learned codec (a model, its coding tables and a fingerprint of its
weights); :class:`PillowCodec` is JPEG or WebP at one quality. Both turn a PIL image into the
bytes of a whole file and back, and :func:`code_image` is the one function that codes an
image and measures it (bytes, reconstruction, bpp, MSE, PSNR, MS-SSIM). Evaluation during
training, the codec CLI, the pretraining validation and the classic-codec baselines all call
it, so every codec is charged its whole file and measured the same way.

Entropy coding runs on the CPU: learned codecs decode correctly only when the decoder
computes exactly the same CDF tables and latent values as the encoder, and floating-point
results differ across devices (GPU vs CPU, and between GPU models). Running the codec on the
CPU of the same machine type makes files decodable wherever fedntc runs on that type; the
model fingerprint in every file rejects a decoder with other weights.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import torch
from compressai.models import CompressionModel
from PIL import Image

from .bitstream import DEFAULT_MAX_PIXELS, FINGERPRINT_BYTES, Bitstream, BitstreamError
from .data.images import GRAYSCALE_MODES, to_rgb
from .metrics import estimated_bits, multiscale_ssim, psnr_from_mse
from .model import pad_to, stride
from .split import state_digest

K = TypeVar("K")  # what pooled_set_means averages over (a codec, a quality...)


def image_to_tensor(image: Image.Image) -> tuple[torch.Tensor, str]:
    """``[1, 3, H, W]`` float tensor in [0, 1] and the mode to restore on decode.

    Grayscale (``L``, ``I;16``...) is replicated to RGB and decoded back to ``L``;
    ``RGBA``/``LA``/``P`` with alpha drop the alpha channel and decode as ``RGB``.
    """
    mode = "L" if image.mode in GRAYSCALE_MODES else "RGB"
    rgb = np.asarray(to_rgb(image), dtype=np.uint8)
    x = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div(255.0).unsqueeze(0)
    return x, mode


def tensor_to_image(x_hat: torch.Tensor, mode: str) -> Image.Image:
    """Round a ``[1, 3, H, W]`` reconstruction to 8 bits in ``mode`` (``L`` or ``RGB``)."""
    array = x_hat.squeeze(0).clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0)
    image = Image.fromarray(array.numpy(), mode="RGB")
    return image.convert("L") if mode == "L" else image


def uint8_to_image(image: torch.Tensor) -> Image.Image:
    """A uint8 ``[3, H, W]`` tensor (the data sources' format) as an RGB PIL image."""
    return Image.fromarray(image.permute(1, 2, 0).contiguous().numpy(), mode="RGB")


class ImageCodec(Protocol):
    """What :func:`code_image` needs of a codec."""

    def encode(self, image: Image.Image) -> bytes: ...

    def decode(self, data: bytes, source: str = "bitstream") -> Image.Image: ...


@dataclass
class Codec:
    """A CPU model with fresh coding tables and the fingerprint of its weights; ``decode``
    refuses files whose header declares more than ``max_pixels`` pixels."""

    model: CompressionModel
    fingerprint: bytes
    max_pixels: int = DEFAULT_MAX_PIXELS

    @classmethod
    def from_model(cls, model: CompressionModel, max_pixels: int = DEFAULT_MAX_PIXELS) -> Codec:
        """Move to CPU, rebuild coding tables (``update(force=True)``) and fingerprint."""
        model = model.to("cpu").eval()
        model.update(force=True)
        return cls(model, state_digest(model.state_dict())[:FINGERPRINT_BYTES], max_pixels)

    @torch.no_grad()
    def encode(self, image: Image.Image) -> bytes:
        """Compress ``image`` to the bytes of a fedntc file."""
        x, mode = image_to_tensor(image)
        height, width = x.shape[-2:]
        x_padded, (_, pad_w, _, pad_h) = pad_to(x, stride(self.model))
        encoded = self.model.compress(x_padded)
        stream = Bitstream(
            fingerprint=self.fingerprint,
            height=height,
            width=width,
            mode=mode,
            pad_h=pad_h,
            pad_w=pad_w,
            shape=tuple(int(s) for s in encoded["shape"]),
            strings=[list(group) for group in encoded["strings"]],
        )
        return stream.to_bytes()

    def decode(self, data: bytes, source: str = "bitstream") -> Image.Image:
        """Decode file bytes to an image; raises :class:`BitstreamError` on any problem."""
        stream = Bitstream.from_bytes(data, source, self.max_pixels)
        if stream.fingerprint != self.fingerprint:
            raise BitstreamError(
                f"{source}: encoded with model {stream.fingerprint.hex()[:12]}, but this model "
                f"is {self.fingerprint.hex()[:12]} (another run, round or client)"
            )
        self._check_geometry(stream, source)
        return self._reconstruct(stream)

    def estimated_bits(self, x: torch.Tensor) -> float:
        """Bits the model's likelihoods assign to ``x`` ``[1, 3, H, W]``."""
        return estimated_bits(self.model, x)

    def _check_geometry(self, stream: Bitstream, source: str) -> None:
        s = stride(self.model)
        padded = (stream.height + stream.pad_h, stream.width + stream.pad_w)
        expected = (padded[0] // s, padded[1] // s)
        if (
            stream.pad_h >= s
            or stream.pad_w >= s
            or padded[0] % s
            or padded[1] % s
            or stream.shape != expected
            or any(len(g) != 1 for g in stream.strings)
            or stream.mode == "RGBA"
        ):
            raise BitstreamError(f"{source}: header does not match this model's geometry")

    @torch.no_grad()
    def _reconstruct(self, stream: Bitstream) -> Image.Image:
        try:
            out = self.model.decompress(stream.strings, list(stream.shape))
        except (RuntimeError, ValueError, IndexError) as err:
            raise BitstreamError(f"entropy decoding failed: {err}") from err
        x_hat = out["x_hat"][..., : stream.height, : stream.width]
        return tensor_to_image(x_hat, stream.mode)


@dataclass(frozen=True)
class PillowCodec:
    """A classic codec through Pillow (``JPEG`` or ``WEBP``) at one quality."""

    format: str
    quality: int

    def encode(self, image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        to_rgb(image).save(buffer, format=self.format, quality=self.quality)
        return buffer.getvalue()

    def decode(self, data: bytes, source: str = "bitstream") -> Image.Image:
        return Image.open(io.BytesIO(data)).convert("RGB")


@dataclass(frozen=True)
class ImageResult:
    """Measurements of one coded image (the whole file is charged)."""

    pixels: int
    bytes: int
    real_bpp: float
    est_bpp: float
    mse: float
    psnr: float
    ms_ssim: float


@dataclass(frozen=True)
class CodedImage:
    """One image through one codec: the file, the reconstruction and the measurements."""

    data: bytes
    x_hat: torch.Tensor  # [1, 3, H, W] in [0, 1], as decoded
    result: ImageResult


def code_image(codec: ImageCodec, image: Image.Image | torch.Tensor) -> CodedImage:
    """Encode ``image`` (PIL, or a uint8 ``[3, H, W]`` tensor), decode the bytes, measure."""
    if torch.is_tensor(image):
        image = uint8_to_image(image)
    data = codec.encode(image)
    x, _ = image_to_tensor(image)
    x_hat, _ = image_to_tensor(codec.decode(data).convert("RGB"))
    pixels = x.shape[-2] * x.shape[-1]
    mse = float(torch.mean((x_hat - x) ** 2))
    est = codec.estimated_bits(x) if hasattr(codec, "estimated_bits") else math.nan
    result = ImageResult(
        pixels=pixels,
        bytes=len(data),
        real_bpp=len(data) * 8 / pixels,
        est_bpp=est / pixels,
        mse=mse,
        psnr=psnr_from_mse(mse),
        ms_ssim=multiscale_ssim(x, x_hat),
    )
    return CodedImage(data, x_hat, result)


def mean_results(results: list[ImageResult]) -> dict[str, float]:
    """Pixel-weighted means over images: bpp from total bits over total pixels, PSNR from
    the mean squared error over all pixels (never a mean of PSNRs, which may be infinite)."""
    if not results:
        raise ValueError("no coded images to average")
    total = sum(r.pixels for r in results)

    def mean(attr: str) -> float:
        return sum(getattr(r, attr) * r.pixels for r in results) / total

    mse = mean("mse")
    return {
        "real_bpp": sum(r.bytes for r in results) * 8 / total,
        "est_bpp": mean("est_bpp"),
        "mse": mse,
        "psnr": psnr_from_mse(mse),
        "ms_ssim": mean("ms_ssim"),
        "num_pixels": float(total),
    }


def evaluate_images(codec: ImageCodec, images: list[torch.Tensor]) -> dict[str, float]:
    """:func:`mean_results` of ``codec`` over uint8 ``[3, H, W]`` images."""
    if not images:
        raise ValueError("no test images to evaluate")
    return mean_results([code_image(codec, image).result for image in images])


def evaluate_image_sets(
    codec: ImageCodec, sets: dict[str, list[torch.Tensor]]
) -> dict[str, dict[str, float]]:
    """:func:`mean_results` of ``codec`` on each named set of uint8 ``[3, H, W]`` images and
    on all of them pooled (key ``"mean"``), coding each distinct image once: clients split
    from one folder share their test images, and the pool repeats every set."""
    return pooled_set_means(sets, lambda image: {None: code_image(codec, image).result})[None]


def pooled_set_means(
    sets: dict[str, list[torch.Tensor]],
    measure: Callable[[torch.Tensor], Mapping[K, ImageResult]],
) -> dict[K, dict[str, dict[str, float]]]:
    """For each key of what ``measure`` returns (a codec, a quality...): :func:`mean_results`
    of each named image set and of all of them pooled (``"mean"``); ``measure`` is called
    once per distinct image (by :func:`image_digest`) and returns the same keys for each."""
    if "mean" in sets:
        raise ValueError("an image set may not be named 'mean' (the pooled set's name)")
    measured: dict[str, Mapping[K, ImageResult]] = {}
    per_set: dict[str, list[Mapping[K, ImageResult]]] = {}
    for name, images in sets.items():
        if not images:
            raise ValueError(f"no test images to evaluate in set {name!r}")
        per_set[name] = []
        for image in images:
            digest = image_digest(image)
            if digest not in measured:
                measured[digest] = measure(image)
            per_set[name].append(measured[digest])
    pooled = [m for results in per_set.values() for m in results]
    return {
        key: {
            **{name: mean_results([m[key] for m in results]) for name, results in per_set.items()},
            "mean": mean_results([m[key] for m in pooled]),
        }
        for key in pooled[0]
    }


def image_digest(image: torch.Tensor) -> str:
    """A digest of a uint8 image tensor's shape and bytes."""
    digest = hashlib.sha256(str(tuple(image.shape)).encode())
    digest.update(image.contiguous().numpy().tobytes())
    return digest.hexdigest()

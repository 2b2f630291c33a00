"""Image codec on a trained model: files in, fedntc bitstreams out, and back.

Entropy coding runs on the CPU: learned codecs decode correctly only when the decoder
computes exactly the same CDF tables and latent values as the encoder, and floating-point
results differ across devices (GPU vs CPU, and between GPU models). Running the codec on the
CPU of the same machine type makes files decodable wherever fedntc runs on that type; the
model fingerprint in every file rejects a decoder with other weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from compressai.models import CompressionModel
from PIL import Image

from common.bitstream import FINGERPRINT_BYTES, Bitstream, BitstreamError
from common.data.images import GRAYSCALE_MODES, to_rgb
from common.evaluate import pad_to
from common.model import stride
from common.split import state_digest


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


@dataclass
class Codec:
    """A CPU model with fresh coding tables and the fingerprint of its weights."""

    model: CompressionModel
    fingerprint: bytes

    @classmethod
    def from_model(cls, model: CompressionModel) -> Codec:
        """Move to CPU, rebuild coding tables (``update(force=True)``) and fingerprint."""
        model = model.to("cpu").eval()
        model.update(force=True)
        return cls(model, state_digest(model.state_dict())[:FINGERPRINT_BYTES])

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
        stream = Bitstream.from_bytes(data, source)
        if stream.fingerprint != self.fingerprint:
            raise BitstreamError(
                f"{source}: encoded with model {stream.fingerprint.hex()[:12]}, but this model "
                f"is {self.fingerprint.hex()[:12]} (another run, round or client)"
            )
        self._check_geometry(stream, source)
        return self._reconstruct(stream)

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

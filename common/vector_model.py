"""A small nonlinear transform coder for vectors, registered beside CompressAI's image models.

Vectors travel as ``[batch, dim, 1, 1]`` tensors (one "pixel" of ``dim`` channels), so
CompressAI's ``RateDistortionLoss`` counts bits per vector and MSE per dimension, and the
transforms are per-pixel MLPs (linear layers over the channel axis). To code a set of ``n``
vectors as one bitstream, lay them out as ``[1, dim, n, 1]``: the factorized entropy model
then codes all latents in one string.
"""

from __future__ import annotations

import torch
from compressai.entropy_models import EntropyBottleneck
from compressai.models import CompressionModel
from compressai.registry import register_model
from torch import nn

from .config import VECTOR_MODEL


class PointwiseMLP(nn.Module):
    """An MLP applied to the channel vector of every pixel of ``[n, C, H, W]``, softplus
    between layers (none after the last). Linear layers: several times faster than 1x1
    convolutions on CPU at these sizes."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(zip(widths, widths[1:], strict=False)):
            layers.append(nn.Linear(w_in, w_out))
            if i < len(widths) - 2:
                layers.append(nn.Softplus())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x.movedim(1, -1)).movedim(-1, 1)


@register_model(VECTOR_MODEL)
class VectorNTC(CompressionModel):
    """MLP analysis ``g_a`` (dim -> N -> N -> M), MLP synthesis ``g_s`` (M -> N -> N -> dim)
    and a factorized ``entropy_bottleneck`` over the ``M`` latent channels.

    Args:
        N: hidden width of both transforms.
        M: latent dimension.
        input_dim: dimension of the data vectors.
    """

    def __init__(self, N: int, M: int, input_dim: int = 2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.g_a = PointwiseMLP([input_dim, N, N, M])
        self.g_s = PointwiseMLP([M, N, N, input_dim])
        self.entropy_bottleneck = EntropyBottleneck(M)
        self.N, self.M, self.input_dim = N, M, input_dim

    @property
    def downsampling_factor(self) -> int:
        return 1

    def forward(self, x: torch.Tensor) -> dict:
        y = self.g_a(x)
        y_hat, y_likelihoods = self.entropy_bottleneck(y)
        return {"x_hat": self.g_s(y_hat), "likelihoods": {"y": y_likelihoods}}

    def compress(self, x: torch.Tensor) -> dict:
        y = self.g_a(x)
        return {"strings": [self.entropy_bottleneck.compress(y)], "shape": y.size()[-2:]}

    def decompress(self, strings: list, shape: torch.Size) -> dict:
        if not isinstance(strings, list) or len(strings) != 1:
            raise ValueError("VectorNTC.decompress expects one list of latent strings")
        y_hat = self.entropy_bottleneck.decompress(strings[0], shape)
        return {"x_hat": self.g_s(y_hat)}


def as_batch(vectors: torch.Tensor) -> torch.Tensor:
    """``[n, dim]`` -> the model's training layout ``[n, dim, 1, 1]``."""
    return vectors[:, :, None, None]


def as_strip(vectors: torch.Tensor) -> torch.Tensor:
    """``[n, dim]`` -> one ``[1, dim, n, 1]`` strip, coded as a single bitstream."""
    return vectors.T[None, :, :, None].contiguous()


def from_strip(strip: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`as_strip`."""
    return strip[0, :, :, 0].T

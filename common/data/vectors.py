"""The distributed source model in a low dimension, with an exact entropy.

As in Lei, Hassani & Saeedi Bidokhti, "Federated Neural Compression Under Heterogeneous
Data" (ISIT 2023): all clients share one map ``G`` from latent to data, each client ``k``
draws its latent ``u`` from its own law. Here, in ``d`` dimensions:

- client ``k``: ``u_i = mu_ki + s_ki * e_i`` with independent standard Laplace ``e_i``;
  ``heterogeneity`` scales how far ``mu_k`` and ``log s_k`` move between clients
  (0 = identical clients);
- shared map: ``x = Q shear(u)`` with ``shear(u)_0 = u_0``,
  ``shear(u)_i = u_i + BEND * sin(FREQ * u_{i-1})`` and a fixed rotation ``Q``.

``shear`` is triangular with a unit diagonal and ``Q`` is orthogonal, so ``G`` preserves
volume: the differential entropy of ``x`` equals that of ``u``, in closed form. That gives
each client's Shannon lower bound on its rate–distortion function (:func:`shannon_lower_bound`).

The map and the client laws come from ``source_seed`` (the same source for every run seed);
the run seed only draws the samples.
"""

from __future__ import annotations

import math

import torch

BEND = 1.0
FREQ = 1.5


def client_law(
    client_id: int, dim: int, heterogeneity: float, source_seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Location ``mu_k`` and Laplace scale ``s_k`` of client ``client_id``'s latent."""
    gen = torch.Generator().manual_seed(source_seed * 1_000_003 + client_id + 1)
    mu = heterogeneity * torch.randn(dim, generator=gen, dtype=torch.float64)
    log_scale = 0.5 * heterogeneity * torch.randn(dim, generator=gen, dtype=torch.float64)
    return mu, log_scale.exp()


def rotation(dim: int, source_seed: int) -> torch.Tensor:
    """The shared map's fixed orthogonal matrix ``Q`` (``[dim, dim]``)."""
    gen = torch.Generator().manual_seed(source_seed * 1_000_003)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def shared_map(u: torch.Tensor, source_seed: int) -> torch.Tensor:
    """``G(u) = Q shear(u)`` for latents ``u`` ``[n, dim]``."""
    bent = u.clone()
    bent[:, 1:] += BEND * torch.sin(FREQ * u[:, :-1])
    return bent @ rotation(u.shape[1], source_seed).T


def client_vectors(
    client_id: int,
    count: int,
    *,
    dim: int,
    heterogeneity: float,
    source_seed: int,
    seed: int,
    split: str,
) -> list[torch.Tensor]:
    """``count`` float32 samples ``[dim]`` of client ``client_id`` (deterministic)."""
    mu, scale = client_law(client_id, dim, heterogeneity, source_seed)
    gen = torch.Generator().manual_seed(
        (seed * 1_000_003 + client_id * 7919) * 2 + (1 if split == "test" else 0)
    )
    uniform = torch.rand(count, dim, generator=gen, dtype=torch.float64).clamp(1e-9, 1 - 1e-9)
    uniform -= 0.5
    laplace = -torch.sign(uniform) * torch.log1p(-2 * uniform.abs())
    x = shared_map(mu + scale * laplace, source_seed)
    return list(x.float())


def entropy_bits(client_id: int, dim: int, heterogeneity: float, source_seed: int) -> float:
    """Differential entropy of client ``client_id``'s data in bits per vector:
    ``sum_i log2(2 e s_ki)`` (Laplace latents, volume-preserving map)."""
    _, scale = client_law(client_id, dim, heterogeneity, source_seed)
    return float(torch.log2(2 * math.e * scale).sum())


def shannon_lower_bound(entropy: float, dim: int, mse: float) -> float:
    """Shannon lower bound on R(D) in bits per vector at mean squared error ``mse`` per
    dimension: ``h(X) - dim/2 log2(2 pi e mse)``, floored at 0. It is tight as ``mse -> 0``;
    entropy-coded uniform scalar quantisation sits ``dim/2 log2(pi e / 6)`` (0.254 bit per
    dimension) above it at high rate."""
    return max(0.0, entropy - dim / 2 * math.log2(2 * math.pi * math.e * mse))

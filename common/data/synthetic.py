"""The paper's distributed source model, as a seeded synthetic image source.

After Lei, Hassani & Saeedi Bidokhti, "Federated Neural Compression Under Heterogeneous
Data" (ISIT 2023): every client's data is ``x = G(u)`` for one fixed map ``G`` shared by
all clients, while each client draws its latent ``u`` from its own distribution. Here
``G(u) = sigmoid(B u)`` with ``B`` a fixed bank of smooth random colour patterns, and client
``k`` draws ``u = mu_k + s_k * e`` with Laplace ``e``; ``heterogeneity`` scales how far
``mu_k`` and ``log s_k`` move from client to client (0 = identical clients).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def shared_generator(latent_dim: int, image_size: int, seed: int) -> torch.Tensor:
    """The common map's basis ``B``: ``[3*S*S, latent_dim]`` smooth patterns."""
    gen = torch.Generator().manual_seed(seed)
    coarse = max(2, image_size // 8)
    low = torch.randn(latent_dim, 3, coarse, coarse, generator=gen)
    smooth = F.interpolate(low, size=(image_size, image_size), mode="bicubic", align_corners=False)
    return smooth.reshape(latent_dim, -1).T.contiguous() * (3.0 / latent_dim**0.5)


def client_latents(
    client_id: int, count: int, latent_dim: int, heterogeneity: float, seed: int, split: str
) -> torch.Tensor:
    """``count`` latents from client ``client_id``'s own distribution."""
    params = torch.Generator().manual_seed(seed * 1_000_003 + client_id)
    mu = heterogeneity * torch.randn(latent_dim, generator=params)
    log_scale = heterogeneity * torch.randn(latent_dim, generator=params)
    draws = torch.Generator().manual_seed(
        seed * 1_000_003 + client_id * 7919 + (1 if split == "test" else 0) + 10_000
    )
    noise = _laplace(count, latent_dim, draws)
    return mu + log_scale.exp() * noise


def _laplace(count: int, dim: int, gen: torch.Generator) -> torch.Tensor:
    uniform = torch.rand(count, dim, generator=gen).clamp(1e-6, 1 - 1e-6) - 0.5
    return -torch.sign(uniform) * torch.log1p(-2 * uniform.abs())


def client_images(
    client_id: int,
    count: int,
    *,
    latent_dim: int,
    image_size: int,
    heterogeneity: float,
    seed: int,
    split: str,
) -> list[torch.Tensor]:
    """``count`` uint8 images ``[3, S, S]`` of one client (deterministic from the seed)."""
    basis = shared_generator(latent_dim, image_size, seed)
    u = client_latents(client_id, count, latent_dim, heterogeneity, seed, split)
    x = torch.sigmoid(u @ basis.T).reshape(count, 3, image_size, image_size)
    return list((x * 255).round().to(torch.uint8))

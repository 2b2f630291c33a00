"""What the learned codecs are compared with: JPEG/WebP on the same test images and, for the
vector source, each client's Shannon lower bound."""

from __future__ import annotations

from typing import Any

from common.config import RunConfig
from common.data import load_client_data, vectors
from study.classic import classic_curves


def classic_rows(conf: RunConfig, clients: list[str]) -> list[dict[str, Any]]:
    """JPEG/WebP curves on each client's test images (image data only)."""
    if conf.data.source == "vectors" or (
        conf.data.source == "synthetic" and conf.data.image_size < 16
    ):
        return []
    rows, all_images = [], []
    for client in clients:
        images = load_client_data(conf.data, int(client), conf.seed).test
        all_images += images
        rows += [{"client": client, **r} for r in classic_curves(images)]
    return rows + [{"client": "mean", **r} for r in classic_curves(all_images)]


def bound_rows(
    conf: RunConfig, clients: list[str], results: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each client's Shannon lower bound (vector source only) over the measured quality
    range: rows of ``client``, ``psnr`` (-10 log10 MSE) and ``rate`` in bits per vector."""
    if conf.data.source != "vectors":
        return []
    data = conf.data
    rows = []
    for client in clients:
        measured = [r["psnr"] for r in results if r["client"] == client]
        entropy = vectors.entropy_bits(
            int(client), data.latent_dim, data.heterogeneity, data.source_seed
        )
        low, high = min(measured) - 1.0, max(measured) + 1.0
        for i in range(41):
            quality = low + (high - low) * i / 40
            rate = vectors.shannon_lower_bound(entropy, data.latent_dim, 10 ** (-quality / 10))
            rows.append({"client": client, "psnr": quality, "rate": rate})
    return rows

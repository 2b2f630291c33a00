"""What the learned codecs are compared with: JPEG/WebP on the same test images, the shipped
base model a run fine-tuned (``model.init=base``) before any federated training and, for the
vector source, each client's Shannon lower bound."""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from common.coding import Codec, evaluate_image_sets, image_digest
from common.config import RunConfig
from common.data import load_client_data, vectors
from common.init import base_path, initial_model
from study.bd_rate import START
from study.classic import classic_set_curves
from study.sources import METRICS

# Codings already done in this process, keyed by the digest of the clients' test images:
# the settings of one report (data.train_images, methods' λ, seeds of folder data) usually
# test on the same images. Rows and metrics only, a few kB per image set.
_CLASSIC: dict[str, list[dict[str, Any]]] = {}
# (base file, its mtime, test images) -> set -> metrics
_START: dict[tuple, dict[str, dict[str, float]]] = {}


def classic_rows(conf: RunConfig, clients: list[str]) -> list[dict[str, Any]]:
    """JPEG/WebP curves on each client's test images (image data only)."""
    if conf.data.source == "vectors" or (
        conf.data.source == "synthetic" and conf.data.image_size < 16
    ):
        return []
    sets = {c: load_client_data(conf.data, int(c), conf.seed).test for c in clients}
    key = _fingerprint(sets)
    if key not in _CLASSIC:  # settings of one report that test on the same images share it
        _CLASSIC[key] = classic_set_curves(sets)
    return [dict(r) for r in _CLASSIC[key]]


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


def start_rows(
    setting: str, conf: RunConfig, results: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The shipped base each (λ, seed) of a ``model.init=base`` setting started from, coded on
    each client's test images (and their pixel-weighted mean), as result rows of method
    :data:`START`; only for the (λ, seed) pairs that have no such rows yet (a merged report
    keeps its own)."""
    if conf.model.init != "base":
        return []
    done = {(r["lmbda"], r["seed"]) for r in results if r["method"] == START}
    wanted = sorted({(r["lmbda"], r["seed"]) for r in results} - done)
    clients = sorted({r["client"] for r in results if r["client"] != "mean"}, key=int)
    rows: list[dict[str, Any]] = []
    for lmbda, seed in wanted:
        test = {c: load_client_data(conf.data, int(c), seed).test for c in clients}
        base = base_path(conf.model, lmbda)
        # seeds and settings that draw the same test images (folder data) share one coding
        key = (base, base.stat().st_mtime_ns, _fingerprint(test))
        if key not in _START:
            model = initial_model(conf.model, seed=seed, lmbda=lmbda)
            _START[key] = evaluate_image_sets(Codec.from_model(model), test)
        for client, metrics in _START[key].items():
            point = {"setting": setting, "method": START, "lmbda": lmbda, "seed": seed}
            measured = {k: metrics[k] for k in METRICS}
            rows.append({**point, "rounds": 0, "run": key[0].name, "client": client, **measured})
    return rows


def _fingerprint(images: dict[str, list[torch.Tensor]]) -> str:
    """A digest of every client's test images (their bytes, in order)."""
    digest = hashlib.sha256()
    for client, tensors in images.items():
        digest.update(client.encode())
        for image in tensors:
            digest.update(image_digest(image).encode())
    return digest.hexdigest()

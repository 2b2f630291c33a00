"""Entropy-model refit: fit the entropy model to transforms it did not see in training.

A personalized client trains its entropy model against its own ``g_a`` during the local
steps, but codes with the averaged ``g_a``/``g_s`` the server sends next. The refit closes
that gap: with the transforms frozen it runs R + λ·D steps (only the rate term depends on
the entropy model) and aux-loss steps on the bottleneck quantiles, so the densities and the
coding range match the latents of the transforms they are paired with. It runs before local
training (FedRep's head-first order) and before every evaluation; the ``fedavg_refit``
baseline applies it only before evaluation, to the global model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
from compressai.models import CompressionModel

from .config import SHARED_PREFIXES, TrainConfig
from .split import KeySplit
from .train import train_steps

# The transforms: what a refit never changes.
TRANSFORMS = SHARED_PREFIXES["personalized"]
# Which methods refit the entropy model before local training / before evaluation.
REFIT_BEFORE_TRAIN = frozenset({"personalized"})
REFIT_BEFORE_EVALUATE = frozenset({"personalized", "fedavg_refit"})


def entropy_model_keys(model: torch.nn.Module, split: KeySplit, method: str) -> frozenset[str]:
    """The parameters a refit trains: every one outside ``g_a``/``g_s``; for
    ``personalized`` only the personal ones among them (shared keys come from the server)."""
    keys = {n for n, _ in model.named_parameters() if n.split(".", 1)[0] not in TRANSFORMS}
    return frozenset(keys & split.personal if method == "personalized" else keys)


def refit_entropy_model(
    model: CompressionModel,
    batches: Iterator[torch.Tensor],
    conf: TrainConfig,
    device: torch.device,
    keys: frozenset[str],
    steps: int,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer] | None = None,
) -> dict[str, float]:
    """``steps`` training steps of the parameters in ``keys`` with every other parameter
    frozen (restored afterwards); returns :func:`common.train.train_steps`' means."""
    frozen = [p for n, p in model.named_parameters() if n not in keys and p.requires_grad]
    for param in frozen:
        param.requires_grad_(False)
    try:
        refit_conf = dataclasses.replace(conf, local_steps=steps)
        return train_steps(model, batches, refit_conf, device, optimizers=optimizers)
    finally:
        for param in frozen:
            param.requires_grad_(True)

"""Onboarding a new client: fit only a personal entropy model, transforms frozen."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from compressai.models import CompressionModel

from common.config import TrainConfig
from common.split import KeySplit
from common.train import train_steps


def adapt_entropy_model(
    model: CompressionModel,
    split: KeySplit,
    batches: Iterator[torch.Tensor],
    conf: TrainConfig,
    device: torch.device | None = None,
    monitor: Callable[[int], None] | None = None,
    monitor_every: int = 0,
) -> dict[str, float]:
    """Train only the personal (non-shared) parameters for ``conf.local_steps`` steps.

    The shared transforms are frozen, so only the entropy model (and hyperprior) moves.
    ``monitor(step)`` runs every ``monitor_every`` steps (the model is back in train mode
    after it). Returns the mean training terms, as :func:`common.train.train_steps`.
    """
    if not split.shared:
        raise ValueError("this run shares no transforms (method 'local'): nothing to adapt to")
    params = dict(model.named_parameters())
    for name, param in params.items():
        param.requires_grad_(name in split.personal)

    def on_step(step: int) -> None:
        if monitor is not None and monitor_every and step % monitor_every == 0:
            monitor(step)
            model.train()

    try:
        return train_steps(model, batches, conf, device or torch.device("cpu"), on_step)
    finally:
        for param in params.values():
            param.requires_grad_(True)


def reset_personal(model: CompressionModel, split: KeySplit, fresh: CompressionModel) -> None:
    """Replace the personal part of ``model`` by that of an untrained ``fresh`` model."""
    state = model.state_dict()
    state.update(split.personal_state(fresh.state_dict()))
    model.load_state_dict(state)

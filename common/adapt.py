"""Onboarding a new client: fit only a personal entropy model, transforms frozen."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from compressai.losses import RateDistortionLoss
from compressai.models import CompressionModel

from .split import KeySplit


def adapt_entropy_model(
    model: CompressionModel,
    split: KeySplit,
    batches: Iterator[torch.Tensor],
    steps: int,
    lmbda: float,
    lr: float = 1e-3,
    aux_lr: float = 1e-3,
    device: torch.device | None = None,
    monitor: Callable[[int], None] | None = None,
    monitor_every: int = 0,
) -> list[float]:
    """Train the personal (non-shared) parameters for ``steps`` steps; return bpp per step.

    The shared transforms are frozen, so only the entropy model (and hyperprior) moves.
    ``monitor(step)`` is called every ``monitor_every`` steps (model in train mode after).
    """
    if not split.shared:
        raise ValueError("this run shares no transforms (method 'local'): nothing to adapt to")
    device = device or torch.device("cpu")
    model.to(device).train()
    names = dict(model.named_parameters())
    personal = [p for n, p in names.items() if n in split.personal and not n.endswith("quantiles")]
    quantiles = [p for n, p in names.items() if n.endswith("quantiles")]
    for name, param in names.items():
        param.requires_grad_(name in split.personal)
    optimizer = torch.optim.Adam(personal, lr=lr)
    aux_optimizer = torch.optim.Adam(quantiles, lr=aux_lr)
    criterion = RateDistortionLoss(lmbda=lmbda)
    history = []
    for _ in range(steps):
        x = next(batches).to(device)
        optimizer.zero_grad(set_to_none=True)
        aux_optimizer.zero_grad(set_to_none=True)
        out = criterion(model(x), x)
        out["loss"].backward()
        optimizer.step()
        model.aux_loss().backward()
        aux_optimizer.step()
        history.append(out["bpp_loss"].item())
        if monitor and monitor_every and (len(history) % monitor_every == 0):
            monitor(len(history))
            model.train()
    for param in names.values():
        param.requires_grad_(True)
    return history


def reset_personal(model: CompressionModel, split: KeySplit, fresh: CompressionModel) -> None:
    """Replace the personal part of ``model`` by that of an untrained ``fresh`` model."""
    state = model.state_dict()
    state.update(split.personal_state(fresh.state_dict()))
    model.load_state_dict(state)

"""Local rate–distortion training with CompressAI's loss and net/aux optimizers."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from compressai.losses import RateDistortionLoss
from compressai.models import CompressionModel
from compressai.optimizers import net_aux_optimizer

from .config import TrainConfig


def make_optimizers(
    model: CompressionModel, conf: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam on all non-``quantiles`` parameters, Adam on the bottleneck ``quantiles``
    (CompressAI's rule, which asserts the two groups are disjoint and complete)."""
    optimizers = net_aux_optimizer(
        model,
        {"net": {"type": "Adam", "lr": conf.lr}, "aux": {"type": "Adam", "lr": conf.aux_lr}},
    )
    return optimizers["net"], optimizers["aux"]


def train_steps(
    model: CompressionModel,
    batches: Iterator[torch.Tensor],
    conf: TrainConfig,
    device: torch.device,
) -> dict[str, float]:
    """Run ``conf.local_steps`` steps of R + λ·D; return the mean of the logged terms.

    Returns the keys of CompressAI's loss (``loss``, ``bpp_loss``, ``mse_loss``) plus
    ``aux_loss``, averaged over the steps.
    """
    model.to(device).train()
    criterion = RateDistortionLoss(lmbda=conf.lmbda)
    optimizer, aux_optimizer = make_optimizers(model, conf)
    totals = {"loss": 0.0, "bpp_loss": 0.0, "mse_loss": 0.0, "aux_loss": 0.0}
    for _ in range(conf.local_steps):
        x = next(batches).to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        aux_optimizer.zero_grad(set_to_none=True)
        out = criterion(model(x), x)
        if not math.isfinite(out["loss"].item()):
            raise FloatingPointError(f"training loss is {out['loss'].item()}; lower train.lr")
        out["loss"].backward()
        if conf.clip_max_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), conf.clip_max_norm)
        optimizer.step()
        aux_loss = model.aux_loss()
        aux_loss.backward()
        aux_optimizer.step()
        for key in ("loss", "bpp_loss", "mse_loss"):
            totals[key] += out[key].item()
        totals["aux_loss"] += aux_loss.item()
    return {k: v / conf.local_steps for k, v in totals.items()}

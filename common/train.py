"""Local rate–distortion training with CompressAI's loss and net/aux optimizers."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from compressai.losses import RateDistortionLoss
from compressai.models import CompressionModel

from .config import TrainConfig
from .precision import autocast, fp32_entropy_models, memory_format


def make_optimizers(
    model: CompressionModel, conf: TrainConfig
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Adam on the trainable non-``quantiles`` parameters (the R–D loss) and Adam on the
    trainable bottleneck ``quantiles`` (the aux loss): CompressAI's net/aux rule, also for a
    model with frozen parts. The two groups are asserted disjoint and complete."""
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    net = {n for n in trainable if not n.endswith(".quantiles")}
    aux = {n for n in trainable if n.endswith(".quantiles")}
    assert not net & aux and net | aux == set(trainable)
    return (
        torch.optim.Adam([trainable[n] for n in sorted(net)], lr=conf.lr, foreach=True),
        torch.optim.Adam([trainable[n] for n in sorted(aux)], lr=conf.aux_lr, foreach=True),
    )


def round_lr(conf: TrainConfig, server_round: int, num_rounds: int) -> float:
    """The learning rate of ``server_round`` (1-based): ``conf.lr``, times ``conf.lr_decay``
    in the last ``conf.lr_decay_rounds`` rounds of ``num_rounds`` (the usual final step decay
    of learned-compression training, which settles the weights before the R–D point is read)."""
    if conf.lr_decay_rounds and server_round > num_rounds - conf.lr_decay_rounds:
        return conf.lr * conf.lr_decay
    return conf.lr


def rd_step(
    model: CompressionModel,
    x: torch.Tensor,
    criterion: RateDistortionLoss,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    clip_max_norm: float,
    precision: str = "fp32",
) -> dict[str, float]:
    """One step of R + λ·D (net optimizer) and of the aux loss (quantiles optimizer).

    ``precision="bf16"`` runs the transforms under bf16 autocast and every entropy model in
    fp32 (:mod:`common.precision`). Returns ``loss``, ``bpp_loss``, ``mse_loss``, ``aux_loss``.
    Raises :class:`FloatingPointError` on a non-finite loss.
    """
    optimizer, aux_optimizer = optimizers
    optimizer.zero_grad(set_to_none=True)
    aux_optimizer.zero_grad(set_to_none=True)
    with autocast(precision, x.device):
        out = criterion(model(x), x)
    loss = out["loss"].item()
    if not math.isfinite(loss):
        raise FloatingPointError(f"training loss is {loss}; lower train.lr")
    out["loss"].backward()
    if clip_max_norm > 0:
        trainable = [p for p in model.parameters() if p.requires_grad]
        torch.nn.utils.clip_grad_norm_(trainable, clip_max_norm)
    optimizer.step()
    aux_loss = model.aux_loss()
    aux_loss.backward()
    aux_optimizer.step()
    return {
        "loss": loss,
        "bpp_loss": out["bpp_loss"].item(),
        "mse_loss": out["mse_loss"].item(),
        "aux_loss": aux_loss.item(),
    }


def prepare_for_training(
    model: CompressionModel, device: torch.device, precision: str
) -> CompressionModel:
    """Move to ``device`` in the memory format of ``precision``, entropy models kept fp32."""
    fp32_entropy_models(model)
    return model.to(device=device, memory_format=memory_format(precision)).train()


def train_steps(
    model: CompressionModel,
    batches: Iterator[torch.Tensor],
    conf: TrainConfig,
    device: torch.device,
    on_step: Callable[[int], None] | None = None,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer] | None = None,
) -> dict[str, float]:
    """Run ``conf.local_steps`` steps of R + λ·D; return the mean of the logged terms.

    Only parameters with ``requires_grad`` are optimised (freeze some to train the rest;
    Adam skips a parameter without a gradient). ``optimizers`` (from :func:`make_optimizers`)
    carry moments from earlier steps; default: fresh ones. Returns the keys of CompressAI's
    loss (``loss``, ``bpp_loss``, ``mse_loss``) plus ``aux_loss``, averaged over the steps.
    ``on_step(step)`` runs after every step.
    """
    prepare_for_training(model, device, conf.precision)
    criterion = RateDistortionLoss(lmbda=conf.lmbda)
    if optimizers is None:
        optimizers = make_optimizers(model, conf)
    fmt = memory_format(conf.precision)
    totals = {"loss": 0.0, "bpp_loss": 0.0, "mse_loss": 0.0, "aux_loss": 0.0}
    for step in range(conf.local_steps):
        x = next(batches).to(device, non_blocking=True).contiguous(memory_format=fmt)
        logs = rd_step(model, x, criterion, optimizers, conf.clip_max_norm, conf.precision)
        for key, value in logs.items():
            totals[key] += value
        if on_step is not None:
            on_step(step + 1)
    model.to(memory_format=torch.contiguous_format)
    return {k: v / max(conf.local_steps, 1) for k, v in totals.items()}

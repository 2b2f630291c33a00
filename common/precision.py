"""Mixed precision for training: bf16 autocast on the transforms, fp32 entropy models.

bf16 keeps 8 bits of mantissa: a latent near 40 is stored in steps of 0.25, which would
swamp the uniform noise that stands in for quantisation, and the bottleneck's cumulative
logits would lose the tails of the density. So under ``bf16`` only the convolutions of
``g_a``/``g_s`` (and ``h_a``/``h_s``) run in bf16; every CompressAI entropy model gets fp32
inputs and runs with autocast off (forward hooks installed by :func:`fp32_entropy_models`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from compressai.entropy_models import EntropyModel

from .config import PRECISIONS

_HOOKED = "_fedntc_fp32_hooks"


def fp32_entropy_models(model: torch.nn.Module) -> torch.nn.Module:
    """Make every entropy model of ``model`` run in fp32 inside an autocast region.

    Idempotent; returns ``model``. Outside autocast the hooks only cast inputs to fp32.
    """
    for module in model.modules():
        if isinstance(module, EntropyModel) and not getattr(module, _HOOKED, False):
            module.register_forward_pre_hook(_autocast_off)
            module.register_forward_hook(_autocast_restore)
            setattr(module, _HOOKED, True)
    return model


def _autocast_off(module: torch.nn.Module, args: tuple) -> tuple:
    saved = [(d, torch.is_autocast_enabled(d)) for d in ("cpu", "cuda")]
    module.__dict__.setdefault("_fedntc_autocast_stack", []).append(saved)
    for device, _ in saved:
        torch.set_autocast_enabled(device, False)
    return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)


def _autocast_restore(module: torch.nn.Module, args: tuple, output: object) -> None:
    for device, enabled in module.__dict__["_fedntc_autocast_stack"].pop():
        torch.set_autocast_enabled(device, enabled)


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """bf16 autocast on ``device`` for ``precision="bf16"``, nothing for ``"fp32"``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision is {precision!r}; expected one of {PRECISIONS}")
    if precision == "fp32":
        yield
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        yield


def memory_format(precision: str) -> torch.memory_format:
    """channels-last under every precision: oneDNN's and cuDNN's fast layout for convolutions
    (fp32 1.41x faster than contiguous for a N=64/M=96 training step on 2 AVX2 cores,
    ``benchmarks/pretrain_step.py``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision is {precision!r}; expected one of {PRECISIONS}")
    return torch.channels_last

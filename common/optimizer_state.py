"""Adam moments that persist with the parameters they belong to.

A client's personal parameters stay on the client between rounds, so their optimizer state
should too: restarting Adam every round throws away its moment estimates and its bias
correction restarts at step 1. The moments are stored by parameter name beside the personal
state dict, under keys ``adam/<net|aux>/<parameter>/<field>``, so they travel wherever the
personal state does (``context.state``, the state file, its previous version) with the same
atomic writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch

PREFIX = "adam/"
FIELDS = ("step", "exp_avg", "exp_avg_sq")
GROUPS = ("net", "aux")


def is_moment_key(key: str) -> bool:
    """True for a key written by :func:`export_moments`."""
    return key.startswith(PREFIX)


def split_moments(
    state: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A saved personal state as (model entries, optimizer moments)."""
    weights = {k: v for k, v in state.items() if not is_moment_key(k)}
    moments = {k: v for k, v in state.items() if is_moment_key(k)}
    return weights, moments


def _named_params(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, torch.nn.Parameter]:
    """The parameters of ``optimizer`` by their name in ``model``."""
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    return {n: p for n, p in model.named_parameters() if id(p) in in_optimizer}


def export_moments(
    model: torch.nn.Module,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    keys: Iterable[str],
) -> dict[str, torch.Tensor]:
    """The Adam state of the parameters named in ``keys`` (detached, on the CPU); parameters
    that never took a step have none."""
    keys = set(keys)
    moments: dict[str, torch.Tensor] = {}
    for group, optimizer in zip(GROUPS, optimizers, strict=True):
        for name, param in _named_params(model, optimizer).items():
            state = optimizer.state.get(param)
            if name not in keys or not state:
                continue
            for field in FIELDS:
                value = torch.as_tensor(state[field])
                moments[f"{PREFIX}{group}/{name}/{field}"] = value.detach().cpu().clone()
    return moments


def restore_moments(
    model: torch.nn.Module,
    optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
    moments: Mapping[str, torch.Tensor],
    origin: str,
) -> int:
    """Load moments written by :func:`export_moments` into freshly built optimizers; returns
    how many parameters got their state back. A moment of an unknown parameter, or one whose
    shape does not match, raises ``ValueError`` naming ``origin``."""
    by_group: dict[str, dict[str, dict[str, torch.Tensor]]] = {g: {} for g in GROUPS}
    for key, value in moments.items():
        group, name, field = key[len(PREFIX) :].split("/")
        if group not in by_group or field not in FIELDS:
            raise ValueError(f"{origin}: unknown optimizer state key {key!r}")
        by_group[group].setdefault(name, {})[field] = value
    restored = 0
    for group, optimizer in zip(GROUPS, optimizers, strict=True):
        params = _named_params(model, optimizer)
        for name, fields in by_group[group].items():
            if name not in params:
                raise ValueError(f"{origin}: optimizer state for {name!r}, not a {group} parameter")
            param = params[name]
            if set(fields) != set(FIELDS) or fields["exp_avg"].shape != param.shape:
                raise ValueError(f"{origin}: optimizer state for {name!r} does not fit it")
            optimizer.state[param] = {
                "step": fields["step"].detach().clone().float().cpu(),
                "exp_avg": fields["exp_avg"].to(param.device, param.dtype).clone(),
                "exp_avg_sq": fields["exp_avg_sq"].to(param.device, param.dtype).clone(),
            }
            restored += 1
    return restored

"""The shared / personal split of a model's state dict.

Shared keys are averaged by the server; personal keys never leave the client. A key is
shared when its first dotted component is one of the configured prefixes (``*`` = every
module) and it is not an entropy-coding table. Coding tables (``_quantized_cdf``,
``_offset``, ``_cdf_length``, ``scale_table``) are integer tables rebuilt by ``update()``;
they are never averaged, so they are always personal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from .config import ConfigError

CODING_TABLE_NAMES = frozenset({"_quantized_cdf", "_offset", "_cdf_length", "scale_table"})
ALL_MODULES = "*"


def is_coding_table(key: str) -> bool:
    """True for the integer entropy-coding buffers CompressAI rebuilds in ``update()``."""
    return key.rsplit(".", 1)[-1] in CODING_TABLE_NAMES


@dataclass(frozen=True)
class KeySplit:
    """Disjoint, complete partition of a state dict's keys into shared and personal."""

    shared: frozenset[str]
    personal: frozenset[str]

    @classmethod
    def from_keys(cls, keys: Iterable[str], prefixes: Iterable[str]) -> KeySplit:
        """Split ``keys`` by top-level module prefix; unknown prefixes are an error."""
        keys = list(keys)
        prefixes = tuple(prefixes)
        modules = {k.split(".", 1)[0] for k in keys}
        if ALL_MODULES in prefixes:
            if len(prefixes) > 1:
                raise ConfigError("'strategy.shared_prefixes': '*' cannot be combined")
            chosen = modules
        else:
            unknown = sorted(set(prefixes) - modules)
            if unknown:
                raise ConfigError(
                    f"'strategy.shared_prefixes' names {unknown}, which are not modules of "
                    f"the model; its modules are {sorted(modules)}"
                )
            chosen = set(prefixes)
        shared = frozenset(
            k for k in keys if k.split(".", 1)[0] in chosen and not is_coding_table(k)
        )
        split = cls(shared=shared, personal=frozenset(keys) - shared)
        split.check(keys)
        return split

    def check(self, keys: Iterable[str]) -> None:
        """Assert the split is disjoint and covers exactly ``keys``."""
        keys = set(keys)
        overlap = self.shared & self.personal
        if overlap:
            raise AssertionError(f"keys both shared and personal: {sorted(overlap)}")
        if self.shared | self.personal != keys:
            missing = sorted(keys - (self.shared | self.personal))
            extra = sorted((self.shared | self.personal) - keys)
            raise AssertionError(
                f"split does not cover the model: missing {missing}, extra {extra}"
            )
        if any(is_coding_table(k) for k in self.shared):
            raise AssertionError("entropy-coding tables must never be shared")

    def shared_state(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The shared entries of a state dict (detached, on CPU)."""
        return {k: state[k].detach().cpu() for k in state if k in self.shared}

    def personal_state(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The personal entries of a state dict (detached, on CPU)."""
        return {k: state[k].detach().cpu() for k in state if k in self.personal}

    def trainable_personal_state(
        self, state: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Personal entries without the coding tables (what training changes)."""
        return {k: v for k, v in self.personal_state(state).items() if not is_coding_table(k)}

    def check_shared_keys(self, keys: Iterable[str], origin: str) -> None:
        """Raise if ``keys`` is not exactly the shared key set (names ``origin``)."""
        keys = set(keys)
        if keys != self.shared:
            leaked = sorted(keys & self.personal)
            unknown = sorted(keys - self.shared - self.personal)
            missing = sorted(self.shared - keys)
            raise ValueError(
                f"{origin} does not carry exactly the shared keys: personal keys {leaked}, "
                f"unknown keys {unknown}, missing shared keys {missing}"
            )


def merge_state(
    model_state: Mapping[str, torch.Tensor], *parts: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Overlay ``parts`` on a full state dict (later parts win); keys must exist in it."""
    merged = dict(model_state)
    for part in parts:
        unknown = sorted(set(part) - set(merged))
        if unknown:
            raise KeyError(f"state has keys the model does not: {unknown}")
        merged.update(part)
    return merged


def state_digest(state: Mapping[str, torch.Tensor]) -> bytes:
    """SHA-256 of a state dict: keys, dtypes, shapes and values, in key order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.digest()


def fingerprint(state: Mapping[str, torch.Tensor]) -> int:
    """A 48-bit hash of a state dict.

    It fits exactly in a float, so clients can report which weights they used as a metric.
    """
    return int.from_bytes(state_digest(state)[:6], "big")

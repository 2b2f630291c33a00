"""Typed configuration of ``fedntc-pretrain`` (composed from ``conf/pretrain.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from common.config import (
    PRECISIONS,
    ConfigError,
    ModelConfig,
    OptimizerConfig,
    flatten,
)
from common.typed_config import build_dataclass


@dataclass
class PretrainData:
    """Image folders (files directly inside) and how training crops are cut."""

    train_dir: str = ""
    val_dir: str = ""
    crop_size: int = 96
    batch_size: int = 8
    max_side: int = 0
    val_max_images: int = 0


@dataclass
class PretrainConfig:
    """Everything one pretraining run needs; ``out_dir`` holds its checkpoint and logs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: PretrainData = field(default_factory=PretrainData)
    train: OptimizerConfig = field(default_factory=OptimizerConfig)
    steps: int = 20000
    decay_steps: int = 2000
    lr_decay: float = 0.1
    validate_every: int = 2000
    checkpoint_every: int = 250
    seed: int = 0
    out_dir: str = ""
    export_to: str = ""

    def __post_init__(self) -> None:
        for key in ("steps", "validate_every", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key '{key}' must be >= 1")
        for key in ("crop_size", "batch_size"):
            if getattr(self.data, key) < 1:
                raise ConfigError(f"config key 'data.{key}' must be >= 1")
        if not 0 <= self.decay_steps <= self.steps:
            raise ConfigError(f"config key 'decay_steps' must be in [0, steps={self.steps}]")
        if self.train.precision not in PRECISIONS:
            raise ConfigError(
                f"config key 'train.precision' is {self.train.precision!r}; "
                f"expected one of {PRECISIONS}"
            )
        if not self.out_dir:
            raise ConfigError("config key 'out_dir' must be set")

    def lr_at(self, step: int) -> float:
        """Learning rate of 0-based ``step``: ``lr``, times ``lr_decay`` in the last
        ``decay_steps`` steps."""
        decayed = self.decay_steps and step >= self.steps - self.decay_steps
        return self.train.lr * (self.lr_decay if decayed else 1.0)


# Keys a run may change and stay the same run (extended, moved, run elsewhere, exported).
RESUMABLE_KEYS = frozenset(
    {
        "steps",
        "decay_steps",
        "lr_decay",
        "validate_every",
        "checkpoint_every",
        "out_dir",
        "export_to",
        "train.device",
        "data.val_max_images",
        "data.train_dir",
        "data.val_dir",
    }
)


def identity(conf: PretrainConfig) -> dict[str, bool | int | float | str]:
    """The flattened config without :data:`RESUMABLE_KEYS`: equal for the same run."""
    return {k: v for k, v in flatten(conf).items() if k not in RESUMABLE_KEYS}


def from_mapping(values: dict) -> PretrainConfig:
    """Validate a nested mapping (a composed Hydra config) into :class:`PretrainConfig`."""
    return build_dataclass(PretrainConfig, values)

"""Typed run configuration shared by the Hydra entry, the ServerApp and the ClientApp.

The Hydra tree in ``conf/`` composes into :class:`RunConfig`. Flower run-configs only hold
flat ``bool | int | float | str`` values, so :func:`flatten` turns the nested config into
dotted keys (``model.name``, ``train.lmbda``) and :func:`from_run_config` rebuilds and
validates it inside the apps. Unknown or ill-typed keys raise :class:`ConfigError` naming
the key, before any training starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .typed_config import ConfigError, build_dataclass

# The one mapping from method to the key prefixes it shares (conf/strategy/*.yaml select it;
# tests/test_config.py checks they agree). personalized may name other prefixes.
SHARED_PREFIXES: dict[str, tuple[str, ...]] = {
    "personalized": ("g_a", "g_s"),
    "fedavg": ("*",),
    "fedavg_refit": ("*",),  # fedavg, then each client refits the entropy model to evaluate
    "local": (),
}
METHODS = tuple(SHARED_PREFIXES)
# Flower strategies the server may apply to the average of the shared keys.
SERVER_OPTIMIZERS = ("fedavg", "fedavgm", "fedadam")
DATA_SOURCES = ("bundled", "synthetic", "folder", "hf", "vectors")
VECTOR_MODEL = "fedntc-vector"
PARTITIONERS = ("iid", "dirichlet", "pathological")
PRECISIONS = ("fp32", "bf16")


@dataclass
class ModelConfig:
    """CompressAI model by registry name, with its channel counts ``N`` and ``M``.

    ``input_dim`` is the data dimension of the vector model (``fedntc-vector``); image
    models ignore it. ``init`` is the starting point (:mod:`common.init`): ``scratch``,
    ``zoo`` (CompressAI's pretrained model at ``quality``; N and M follow the quality),
    ``base`` (the shipped base model trained at the λ nearest ``train.lmbda``, from
    ``base_dir``, default this checkout's ``models/`` or ``$FEDNTC_MODELS``) or a file path.
    """

    name: str = "bmshj2018-factorized"
    N: int = 32
    M: int = 48
    input_dim: int = 2
    init: str = "scratch"
    quality: int = 3
    base_dir: str = ""


@dataclass
class DataConfig:
    """Where each client's images come from and how they are cut for training."""

    source: str = "bundled"
    num_clients: int = 4
    crop_size: int = 64
    batch_size: int = 8
    max_side: int = 256
    test_max_images: int = 0
    root: str = ""
    # folder: split each client folder of `root` into several clients with few images each
    clients_per_folder: int = 1
    train_images: int = 0  # training images per client (0: all of its share)
    # synthetic / vectors: the paper's distributed source model (images / low-dim vectors)
    image_size: int = 32
    latent_dim: int = 16
    train_size: int = 256
    test_size: int = 8
    heterogeneity: float = 1.0
    source_seed: int = 0
    # hf: any image dataset through flwr-datasets partitioners
    hf_dataset: str = ""
    hf_data_dir: str = ""
    hf_split: str = "train"
    image_key: str = "image"
    label_key: str = "label"
    partitioner: str = "dirichlet"
    alpha: float = 0.5
    classes_per_client: int = 2
    test_fraction: float = 0.2


@dataclass
class OptimizerConfig:
    """R + λ·D with CompressAI's net/aux Adam optimizers (federated and pretraining)."""

    lmbda: float = 0.0067
    lr: float = 1e-3
    aux_lr: float = 1e-3
    clip_max_norm: float = 1.0
    device: str = "auto"
    precision: str = "fp32"  # fp32 | bf16 (transforms in bf16 autocast, entropy models fp32)


@dataclass
class TrainConfig(OptimizerConfig):
    """Local optimisation per round; the last ``lr_decay_rounds`` rounds train at
    ``lr * lr_decay`` (0: constant)."""

    local_steps: int = 50
    lr_decay_rounds: int = 0
    lr_decay: float = 0.1


@dataclass
class StrategyConfig:
    """Which method runs and which state-dict key prefixes are shared with the server.

    ``shared_prefixes`` lists top-level module names (``g_a``, ``g_s``); ``*`` shares every
    trainable key (``fedavg``) and an empty list shares nothing (``local``).
    """

    method: str = "personalized"
    shared_prefixes: list[str] = field(
        default_factory=lambda: list(SHARED_PREFIXES["personalized"])
    )
    fraction_train: float = 1.0
    fraction_evaluate: float = 1.0
    min_clients: int = 4
    round_timeout: float = 3600.0
    evaluate_every: int = 1  # coded evaluation every N rounds, and always after the last
    # Protocol (docs/architecture.md, "One round"): entropy-model refit on the received
    # transforms, Adam moments kept with the personal parameters, the server's optimizer.
    refit_steps: int = 0
    keep_optimizer_state: bool = True
    server_optimizer: str = "fedavg"  # fedavg | fedavgm | fedadam (Flower's, shared keys only)
    server_lr: float = 1.0  # FedAvgM server_learning_rate / FedAdam eta
    server_momentum: float = 0.0  # FedAvgM server_momentum / FedAdam beta_1
    server_tau: float = 1e-3  # FedAdam tau (Flower's default), added to sqrt(v_t) in its divisor


@dataclass
class RunConfig:
    """Everything a ServerApp and ClientApp need for one federated run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    num_rounds: int = 6
    seed: int = 0
    output_dir: str = ""
    state_dir: str = ""
    resume: bool = False

    def __post_init__(self) -> None:
        _check_choice("strategy.method", self.strategy.method, METHODS)
        _check_choice("data.source", self.data.source, DATA_SOURCES)
        _check_choice("data.partitioner", self.data.partitioner, PARTITIONERS)
        _check_choice("train.precision", self.train.precision, PRECISIONS)
        _check_choice(
            "strategy.server_optimizer", self.strategy.server_optimizer, SERVER_OPTIMIZERS
        )
        for key, value in (
            ("num_rounds", self.num_rounds),
            ("data.num_clients", self.data.num_clients),
            ("data.batch_size", self.data.batch_size),
            ("data.crop_size", self.data.crop_size),
            ("train.local_steps", self.train.local_steps),
            ("strategy.evaluate_every", self.strategy.evaluate_every),
        ):
            if value < 1:
                raise ConfigError(f"config key '{key}' must be >= 1, got {value}")
        vector_data, vector_model = self.data.source == "vectors", self.model.name == VECTOR_MODEL
        if vector_data != vector_model:
            raise ConfigError(
                f"config keys 'data.source'={self.data.source} and 'model.name'={self.model.name} "
                f"do not fit: the vector source needs model.name={VECTOR_MODEL} and vice versa"
            )
        if vector_data and self.model.input_dim != self.data.latent_dim:
            raise ConfigError(
                f"config key 'model.input_dim' is {self.model.input_dim} but the vector source "
                f"has 'data.latent_dim'={self.data.latent_dim}"
            )
        if self.train.lmbda <= 0:
            raise ConfigError(f"config key 'train.lmbda' must be > 0, got {self.train.lmbda}")
        if not 0 <= self.train.lr_decay_rounds <= self.num_rounds:
            raise ConfigError(
                f"config key 'train.lr_decay_rounds' is {self.train.lr_decay_rounds}; it must be "
                f"between 0 and num_rounds={self.num_rounds}"
            )
        if not 0 < self.train.lr_decay <= 1:
            raise ConfigError(
                f"config key 'train.lr_decay' must be in (0, 1], got {self.train.lr_decay}"
            )
        strategy = self.strategy
        if not 1 <= strategy.min_clients <= self.data.num_clients:
            raise ConfigError(
                f"config key 'strategy.min_clients' is {strategy.min_clients}; it must be between "
                f"1 and data.num_clients={self.data.num_clients} (or rounds wait forever)"
            )
        if strategy.refit_steps < 0:
            raise ConfigError(
                f"config key 'strategy.refit_steps' must be >= 0, got {strategy.refit_steps}"
            )
        if strategy.server_lr <= 0 or not 0 <= strategy.server_momentum < 1:
            raise ConfigError(
                "config keys 'strategy.server_lr' must be > 0 and 'strategy.server_momentum' in "
                f"[0, 1), got {strategy.server_lr} and {strategy.server_momentum}"
            )
        if strategy.server_tau <= 0:
            raise ConfigError(
                f"config key 'strategy.server_tau' must be > 0, got {strategy.server_tau}"
            )
        data = self.data
        if (data.clients_per_folder, data.train_images) != (1, 0) and data.source != "folder":
            raise ConfigError(
                "config keys 'data.clients_per_folder' and 'data.train_images' split image "
                f"folders (data.source=folder); this run reads data.source={data.source}"
            )
        if data.clients_per_folder < 1 or data.train_images < 0:
            raise ConfigError(
                "config keys 'data.clients_per_folder' must be >= 1 and 'data.train_images' "
                f">= 0, got {data.clients_per_folder} and {data.train_images}"
            )
        if data.num_clients % data.clients_per_folder:
            raise ConfigError(
                f"config key 'data.num_clients'={data.num_clients} is not a multiple of "
                f"'data.clients_per_folder'={data.clients_per_folder}"
            )
        for key in ("fraction_train", "fraction_evaluate"):
            if not 0 < getattr(strategy, key) <= 1:
                raise ConfigError(f"config key 'strategy.{key}' must be in (0, 1]")
        expected = list(SHARED_PREFIXES[strategy.method])
        if strategy.method != "personalized" and strategy.shared_prefixes != expected:
            raise ConfigError(
                f"strategy.method={strategy.method} shares {expected or 'nothing'}, but "
                f"'strategy.shared_prefixes' is {strategy.shared_prefixes}"
            )
        if strategy.method == "personalized" and (
            not strategy.shared_prefixes or "*" in strategy.shared_prefixes
        ):
            raise ConfigError(
                "strategy.method=personalized needs 'strategy.shared_prefixes' to name the shared "
                f"transforms (e.g. g_a,g_s), got {strategy.shared_prefixes}"
            )


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"config key '{key}' is {value!r}; expected one of {choices}")


def flatten(config: RunConfig) -> dict[str, bool | int | float | str]:
    """Flatten to Flower run-config form: dotted keys, lists joined by commas."""
    flat: dict[str, bool | int | float | str] = {}

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                walk(value, key + ".")
            elif isinstance(value, list):
                flat[key] = ",".join(value)
            else:
                flat[key] = value

    walk(config, "")
    return flat


# Keys that may change while a run is the same run (extended, resumed, moved).
RUN_EXTENSION_KEYS = frozenset({"num_rounds", "resume", "output_dir", "state_dir"})
# Keys that may change when a run continues, as long as the rounds it has done keep their
# learning rate (checked where runs resume): the lr schedule and how often clients evaluate.
RUN_SCHEDULE_KEYS = frozenset(
    {"train.lr_decay_rounds", "train.lr_decay", "strategy.evaluate_every"}
)


def run_identity(config: RunConfig) -> dict[str, bool | int | float | str]:
    """The flattened config without :data:`RUN_EXTENSION_KEYS`: equal for the same run."""
    return {k: v for k, v in flatten(config).items() if k not in RUN_EXTENSION_KEYS}


def from_mapping(values: Mapping[str, Any]) -> RunConfig:
    """Build a :class:`RunConfig` from a nested mapping (e.g. a composed Hydra config)."""
    return build_dataclass(RunConfig, values)


def from_run_config(run_config: Mapping[str, Any]) -> RunConfig:
    """Rebuild the typed config from a flat Flower ``context.run_config``."""
    nested: dict[str, Any] = {}
    for key, value in run_config.items():
        node = nested
        *parents, leaf = str(key).split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config key '{key}' conflicts with a scalar key")
        node[leaf] = value
    return from_mapping(nested)

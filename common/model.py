"""Model factory: CompressAI models by registry name.

Models follow Ballé et al., "Variational image compression with a scale hyperprior"
(ICLR 2018): analysis ``g_a``, synthesis ``g_s``, and an entropy model
(``entropy_bottleneck``; ``h_a``, ``h_s``, ``gaussian_conditional`` for the hyperprior).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from compressai.models import CompressionModel
from compressai.registry import MODELS

from . import vector_model  # noqa: F401  (registers the vector model in MODELS)
from .config import VECTOR_MODEL, ConfigError, ModelConfig


def zoo_dims(name: str, quality: int) -> tuple[int, int]:
    """N, M of CompressAI's zoo model ``name`` at ``quality`` (``compressai.zoo`` cfgs)."""
    from compressai.zoo.image import cfgs

    if name not in cfgs:
        raise ConfigError(f"config key 'model.name' is {name!r}; zoo models: {sorted(cfgs)}")
    if quality not in cfgs[name]:
        raise ConfigError(
            f"config key 'model.quality' is {quality}; {name} has qualities {sorted(cfgs[name])}"
        )
    n, m = cfgs[name][quality][:2]
    return int(n), int(m)


def model_dims(conf: ModelConfig) -> ModelConfig:
    """``conf`` with N and M of the zoo model when ``model.init=zoo`` (they follow the
    quality), else ``conf`` itself."""
    if conf.init != "zoo":
        return conf
    n, m = zoo_dims(conf.name, conf.quality)
    return dataclasses.replace(conf, N=n, M=m)


def create_model(conf: ModelConfig, seed: int | None = None) -> CompressionModel:
    """Build an untrained CompressAI model.

    Args:
        conf: registry name (``compressai.registry.MODELS``) and channel counts N, M.
        seed: if given, parameters are initialised from this seed (same seed, same weights).
    """
    conf = model_dims(conf)
    if conf.name not in MODELS:
        raise ConfigError(
            f"config key 'model.name' is {conf.name!r}; registered CompressAI models: "
            f"{sorted(MODELS)}"
        )
    if conf.N < 1 or conf.M < 1:
        raise ConfigError(f"config keys 'model.N', 'model.M' must be >= 1, got {conf.N}, {conf.M}")
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        if conf.name == VECTOR_MODEL:
            return MODELS[conf.name](N=conf.N, M=conf.M, input_dim=conf.input_dim)
        return MODELS[conf.name](N=conf.N, M=conf.M)


def pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Replicate-pad ``x`` ``[N, C, H, W]`` on the right/bottom to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    pad = (0, (-w) % multiple, 0, (-h) % multiple)
    return F.pad(x, pad, mode="replicate"), pad


def stride(model: CompressionModel) -> int:
    """Spatial downsampling of the whole model (inputs are padded to a multiple of it)."""
    return int(getattr(model, "downsampling_factor", 64))


def resolve_device(name: str, key: str = "config key 'train.device'") -> torch.device:
    """Map ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` to a device, checking it exists.

    ``key`` names where the value came from in errors.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"{key} is {name!r}: {err}") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key} is {name!r}, but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"{key} is {name!r}, but only {torch.cuda.device_count()} GPU(s) exist"
            )
    return device

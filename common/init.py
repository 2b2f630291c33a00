"""Starting points of a run (``model.init``): scratch, a CompressAI zoo model, or a file.

* ``scratch``: seeded random weights (the paper's setting).
* ``zoo``: CompressAI's pretrained ``model.name`` at ``model.quality`` through CompressAI's
  own loader, which caches in torch hub's folder (``$TORCH_HOME/hub/checkpoints``); N and M
  follow the quality. Offline without the cached file, it fails naming file and folder.
* ``base``: the project's shipped base model for ``model.name``/N/M (``models/``) trained
  at the λ nearest (in log scale) to the run's ``train.lmbda``.
* a path: a base model file, a plain CompressAI state dict (``.pth.tar`` with or without a
  ``state_dict`` key), or a file written by ``fedntc-codec export`` (a run's global
  transforms with one client's entropy model).

Every process of a run (server and every client, every method) builds the same weights
from the same ``model.init``; a resumed run overwrites them with its saved state.
"""

from __future__ import annotations

import math
import os
import re
import urllib.error
from pathlib import Path
from typing import Any

import torch
from compressai.models import CompressionModel

from .checkpoint import atomic_save, load_tensors
from .config import ConfigError, ModelConfig
from .model import create_model
from .split import is_coding_table

BASE_FORMAT = "fedntc-base-1"
HALF_MIN_NUMEL = 1024  # smaller tensors of a base model file stay in fp32
# Shipped base weights: the checkout's models/, or $FEDNTC_MODELS where the code runs from
# Flower's app bundle (which carries code only), as in the Docker image.
MODELS_DIR = Path(
    os.environ.get("FEDNTC_MODELS", Path(__file__).resolve().parent.parent / "models")
)


def zoo_state_dict(name: str, quality: int) -> dict[str, torch.Tensor]:
    """The zoo weights through CompressAI's loader (``compressai.zoo``), which reads torch
    hub's cache or downloads the file into it once."""
    from compressai.zoo import image as zoo
    from compressai.zoo import image_models

    url = zoo.model_urls[name]["mse"][quality]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    try:
        model = image_models[name](quality=quality, metric="mse", pretrained=True, progress=False)
    except (urllib.error.URLError, OSError) as err:
        raise ConfigError(
            f"model.init=zoo needs {cached.name} in {cached.parent}; it is not there and could "
            f"not be downloaded from {url} ({err}); put the file in that folder"
        ) from err
    return model.state_dict()


def models_dir(conf: ModelConfig) -> Path:
    """Where the shipped bases are: ``model.base_dir``, or this machine's :data:`MODELS_DIR`."""
    return Path(conf.base_dir).expanduser() if conf.base_dir else MODELS_DIR


def shipped_bases(conf: ModelConfig) -> dict[float, Path]:
    """The shipped base files of ``conf``'s name, N and M (``<name>-N<N>-M<M>-l<λ>.pt``),
    by the λ they were trained at."""
    pattern = re.compile(rf"{re.escape(conf.name)}-N{conf.N}-M{conf.M}-l([0-9.eE+-]+)\.pt")
    found = {}
    for path in models_dir(conf).glob("*.pt"):
        match = pattern.fullmatch(path.name)
        if match:
            found[float(match.group(1))] = path
    return found


def base_path(conf: ModelConfig, lmbda: float) -> Path:
    """The shipped base model for ``conf`` whose λ is nearest ``lmbda`` (in log scale)."""
    bases = shipped_bases(conf)
    if not bases:
        folder = models_dir(conf)
        shipped = sorted(p.name for p in folder.glob("*.pt"))
        raise ConfigError(
            f"model.init=base: no shipped base model {conf.name}-N{conf.N}-M{conf.M}-l<λ>.pt "
            f"in {folder}; shipped: {shipped} (set model.name/N/M to one of them)"
        )
    nearest = min(bases, key=lambda trained: abs(math.log(trained / lmbda)))
    return bases[nearest]


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Float32 weights of a base model file or a plain CompressAI state dict."""
    if not path.exists():
        raise ConfigError(f"config key 'model.init': file {path} does not exist")
    saved: Any = load_tensors(path)
    if isinstance(saved, dict) and isinstance(saved.get("state_dict"), dict):
        saved = saved["state_dict"]  # a base model file, or a CompressAI training checkpoint
    if not isinstance(saved, dict) or not all(torch.is_tensor(v) for v in saved.values()):
        raise ConfigError(f"config key 'model.init': {path} holds no state dict of tensors")
    from compressai.zoo.pretrained import load_pretrained

    return {k: v.float() if v.is_floating_point() else v for k, v in load_pretrained(saved).items()}


def constant_buffers(model: CompressionModel) -> dict[str, torch.Tensor]:
    """The buffers CompressAI sets from constructor arguments and never trains (likelihood
    and scale lower bounds, GDN pedestals, the bottleneck's quantile targets): every buffer
    but the coding tables. A file's copy is never better than the model's own: in fp16
    (files written before :func:`save_base` kept them in fp32) the likelihood bound of 1e-9
    and the pedestals underflow to 0, and a likelihood of exactly 0 makes the rate infinite."""
    return {
        name: value
        for name, value in model.named_buffers()
        if value.numel() and not is_coding_table(name)
    }


def load_into(model: CompressionModel, state: dict[str, torch.Tensor], origin: str) -> None:
    """Load ``state`` (all keys, same shapes but coding tables; the model's own
    :func:`constant_buffers`); errors name the keys."""
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} (model: {tuple(own[k].shape)})"
        for k in set(own) & set(state)
        if own[k].shape != state[k].shape and not is_coding_table(k)
    )
    if missing or unexpected or wrong:
        raise ConfigError(
            f"{origin} does not fit the configured model: missing keys {missing[:6]}, "
            f"unexpected keys {unexpected[:6]}, other shapes {wrong[:6]} "
            "(check model.name, model.N and model.M)"
        )
    constants = {k: v.clone() for k, v in constant_buffers(model).items()}
    model.load_state_dict({**state, **constants})


def initial_model(
    conf: ModelConfig, seed: int | None = None, lmbda: float | None = None
) -> CompressionModel:
    """The model a run starts from (see the module docstring); ``lmbda``, the run's
    ``train.lmbda``, picks the shipped base for ``init=base``."""
    model = create_model(conf, seed=seed)
    if conf.init == "scratch":
        return model
    if conf.init == "zoo":
        state, origin = zoo_state_dict(conf.name, conf.quality), f"zoo {conf.name} q{conf.quality}"
    else:
        if conf.init == "base":
            if lmbda is None:
                raise ValueError("model.init=base needs the run's λ to pick a shipped base")
            path = base_path(conf, lmbda)
        else:
            path = Path(conf.init).expanduser()
        state, origin = read_state_dict(path), str(path)
    load_into(model, state, origin)
    return model


def load_model_file(path: Path, name: str = "bmshj2018-factorized") -> CompressionModel:
    """A whole model from one file: a base model (its name, N and M are stored in it) or a
    plain CompressAI state dict of architecture ``name`` (N and M read from its shapes)."""
    from compressai.registry import MODELS

    state = read_state_dict(path)
    saved = load_tensors(path)
    meta = saved.get("meta", {}) if isinstance(saved, dict) else {}
    if saved.get("format") == BASE_FORMAT and {"name", "N", "M"} <= set(meta):
        model = create_model(ModelConfig(name=meta["name"], N=meta["N"], M=meta["M"]))
        load_into(model, state, str(path))
        return model
    if name not in MODELS:
        raise ConfigError(f"model {name!r} is not a CompressAI model; known: {sorted(MODELS)}")
    try:
        return MODELS[name].from_state_dict(state)
    except (KeyError, RuntimeError, AttributeError) as err:
        raise ConfigError(f"{path} is not a {name} state dict: {err}") from err


def save_base(state: dict[str, torch.Tensor], meta: dict[str, Any], dest: Path) -> None:
    """Write a base model file: weights (tensors of :data:`HALF_MIN_NUMEL` elements or more)
    in fp16, loaded back as fp32, so encoder and decoder hold identical values and coding
    stays bit-exact; small tensors (biases, bounds, quantiles) in fp32, where they cost
    nothing and nothing underflows; coding tables as they are; plus ``meta`` (name, N, M,
    λ, steps)."""
    stored = {
        k: v.detach().to("cpu").half()
        if v.is_floating_point() and v.numel() >= HALF_MIN_NUMEL and not is_coding_table(k)
        else v.detach().to("cpu")
        for k, v in state.items()
    }
    atomic_save({"format": BASE_FORMAT, "meta": meta, "state_dict": stored}, dest)

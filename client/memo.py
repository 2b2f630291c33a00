"""Per-process memo of what does not change between the messages of a run.

A simulation's Ray actor handles many messages (several clients, every round) in one
process; without this it parsed the run config, decoded the client's images and built the
starting model again for each. Each entry is keyed by everything it is derived from, and
what a handler may change (the model) is handed out as a copy, so every message computes
exactly what it would in a fresh process (tested in ``tests/test_client.py``). A deployed
SuperNode with Flower's default process isolation starts a process per message and gains
nothing, but loses nothing either.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from compressai.models import CompressionModel

from common.config import DataConfig, ModelConfig, RunConfig, from_run_config
from common.data import ClientData, load_client_data
from common.init import initial_model

# Decoded data of this many clients stays in memory (an actor serves several clients).
DATA_ENTRIES = 4


def run_config(values: Mapping[str, Any]) -> RunConfig:
    """``context.run_config`` parsed and checked (a fresh copy: callers may replace fields)."""
    return copy.deepcopy(_parsed(tuple(sorted(values.items()))))


@functools.lru_cache(maxsize=2)
def _parsed(items: tuple[tuple[str, Any], ...]) -> RunConfig:
    return from_run_config(dict(items))


def client_data(conf: DataConfig, client_id: int, seed: int, data_dir: str) -> ClientData:
    """One client's data, decoded once per process. Shared, not copied: training crops
    and batches are new tensors, and nothing writes into the samples."""
    return _data(_key(conf), client_id, seed, data_dir)


@functools.lru_cache(maxsize=DATA_ENTRIES)
def _data(conf_key: tuple, client_id: int, seed: int, data_dir: str) -> ClientData:
    return load_client_data(DataConfig(**dict(conf_key)), client_id, seed, data_dir)


def starting_model(conf: ModelConfig, seed: int, lmbda: float) -> CompressionModel:
    """A copy of the run's starting model (:func:`common.init.initial_model`), built or
    read from disk once per process."""
    return copy.deepcopy(_model(_key(conf), seed, lmbda))


@functools.lru_cache(maxsize=2)
def _model(conf_key: tuple, seed: int, lmbda: float) -> CompressionModel:
    return initial_model(ModelConfig(**dict(conf_key)), seed=seed, lmbda=lmbda)


def _key(section: Any) -> tuple[tuple[str, Any], ...]:
    """A hashable key of a flat config section (every field, in order)."""
    return tuple((f.name, getattr(section, f.name)) for f in dataclasses.fields(section))


def clear() -> None:
    """Forget everything (tests; a process that must re-read its data)."""
    for cached in (_parsed, _data, _model):
        cached.cache_clear()

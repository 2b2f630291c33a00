"""The client's personal model part: in ``context.state`` for the run, and on disk.

``context.state`` is memory only; the same state is also written atomically to the
client's state file so that a restarted SuperNode continues with its own entropy model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context

from common.checkpoint import atomic_save, load_tensors
from common.config import ModelConfig

STATE_KEY = "personal-model"
META_KEY = "personal-meta"


def model_signature(conf: ModelConfig) -> str:
    """Identifies the architecture a personal state belongs to."""
    return f"{conf.name}:N={conf.N}:M={conf.M}"


def load_personal(
    context: Context, state_file: Path, model_conf: ModelConfig
) -> tuple[dict[str, torch.Tensor], int]:
    """The saved personal state and the round it is from: from ``context.state``, else from
    disk (a restarted SuperNode), else ``({}, 0)`` on a client's first round."""
    if STATE_KEY in context.state.array_records:
        state = dict(context.state.array_records[STATE_KEY].to_torch_state_dict())
        return state, int(context.state.config_records[META_KEY]["round"])
    if not state_file.exists():
        return {}, 0
    return read_state_file(state_file, model_conf)


def read_state_file(
    state_file: Path, model_conf: ModelConfig
) -> tuple[dict[str, torch.Tensor], int]:
    """A personal state written by :func:`write_state_file` (checked against the model) and
    the round it was saved after."""
    if not state_file.exists():
        raise FileNotFoundError(f"no personal state file {state_file}")
    saved = load_tensors(state_file)
    if not isinstance(saved, dict) or "state" not in saved or "model" not in saved:
        raise ValueError(f"state file {state_file} is not a fedntc personal state")
    if saved["model"] != model_signature(model_conf):
        raise ValueError(
            f"state file {state_file} holds a {saved['model']} model, but this run trains "
            f"{model_signature(model_conf)}; point state-dir elsewhere or remove the file"
        )
    return dict(saved["state"]), int(saved.get("round", 0))


def save_personal(
    context: Context,
    state: dict[str, torch.Tensor],
    state_file: Path,
    model_conf: ModelConfig,
    server_round: int,
) -> None:
    """Keep ``state`` in ``context.state`` and write it atomically to ``state_file``."""
    context.state[STATE_KEY] = ArrayRecord(state)
    context.state[META_KEY] = ConfigRecord({"round": server_round})
    write_state_file(state_file, state, model_conf, server_round)


def write_state_file(
    state_file: Path, state: dict[str, torch.Tensor], model_conf: ModelConfig, server_round: int
) -> None:
    """Write a personal state atomically, tagged with its architecture and round."""
    atomic_save(
        {"model": model_signature(model_conf), "round": server_round, "state": state},
        state_file,
    )

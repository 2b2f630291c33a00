"""The client's personal model part: in ``context.state`` for the run, and on disk.

``context.state`` is memory only; the same state is also written atomically to the
client's state file so that a restarted SuperNode continues with its own entropy model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context

from common.config import ModelConfig
from common.run_folder import read_state_file, write_state_file

STATE_KEY = "personal-model"
META_KEY = "personal-meta"


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

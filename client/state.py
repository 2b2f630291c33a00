"""The client's personal model part: in ``context.state`` for the run, and on disk.

``context.state`` is memory only; the same state is also written atomically to the
client's state file so that a restarted SuperNode continues with its own entropy model.

Personal state is tied to the run (the file is named by the run uid the server sends) and to
the shared round it was trained in: for server round ``r`` a client uses the newest version
saved after a round before ``r`` (evaluation: up to ``r``). A newer version exists only when
the server crashed mid-round and resumed from the checkpoint before it; the file keeps the
version each state was trained from, so the resumed round starts from the matching one.
"""

from __future__ import annotations

from logging import WARNING
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.supercore import log

from common.config import ModelConfig
from common.run_folder import read_state_versions, write_state_file

STATE_KEY = "personal-model"
META_KEY = "personal-meta"

Version = tuple[int, dict[str, torch.Tensor]]


def _in_memory(context: Context) -> Version | None:
    """The version kept in ``context.state`` (the newest this process saved), if any."""
    if STATE_KEY not in context.state.array_records:
        return None
    state = dict(context.state.array_records[STATE_KEY].to_torch_state_dict())
    return int(context.state.config_records[META_KEY]["round"]), state


def _versions(
    context: Context, state_file: Path, model_conf: ModelConfig, run_uid: str
) -> list[Version]:
    """Every version this client holds for run ``run_uid``, newest first: memory, then the
    file."""
    memory = _in_memory(context)
    found: list[Version] = [memory] if memory else []
    if state_file.exists():
        owner, on_disk = read_state_versions(state_file, model_conf)
        if owner != run_uid:
            raise ValueError(f"state file {state_file} belongs to run {owner!r}, not {run_uid!r}")
        found += [v for v in on_disk if v[0] not in {r for r, _ in found}]
    return sorted(found, key=lambda v: v[0], reverse=True)


def load_personal(
    context: Context, state_file: Path, model_conf: ModelConfig, run_uid: str, before_round: int
) -> Version:
    """The newest personal state saved after a round before ``before_round``, and that round
    (``(0, {})``: none yet, a fresh entropy model). Newer versions are skipped with a log
    line saying why."""
    memory = _in_memory(context)
    if memory and memory[0] < before_round:  # the newest version: no need to read the file
        return memory
    versions = _versions(context, state_file, model_conf, run_uid)
    usable = [v for v in versions if v[0] < before_round]
    if len(usable) < len(versions):
        log(
            WARNING,
            "fedntc: %s holds personal state of round %d, but the server is at round %d "
            "(it resumed from an earlier checkpoint); using round %s",
            state_file,
            versions[0][0],
            before_round,
            usable[0][0] if usable else "none (a fresh entropy model)",
        )
    return usable[0] if usable else (0, {})


def save_personal(
    context: Context,
    state: dict[str, torch.Tensor],
    state_file: Path,
    model_conf: ModelConfig,
    server_round: int,
    run_uid: str,
    trained_from: Version,
) -> None:
    """Keep ``state`` in ``context.state`` and write it atomically to ``state_file``, with
    the version it was trained from."""
    context.state[STATE_KEY] = ArrayRecord(state)
    context.state[META_KEY] = ConfigRecord({"round": server_round})
    previous = trained_from if trained_from[1] else None
    write_state_file(state_file, state, model_conf, server_round, run_uid, previous)

"""Loading a client's trained model from a run directory: the server's shared weights of
one round plus the client's personal state."""

from __future__ import annotations

import json
from pathlib import Path

from compressai.models import CompressionModel

from client.state import read_state_file
from common.checkpoint import latest_checkpoint, load_shared_checkpoint
from common.config import RunConfig, from_run_config
from common.model import create_model
from common.paths import client_state_file
from common.split import KeySplit, merge_state


def load_run_config(run_dir: Path) -> RunConfig:
    """The resolved config a run wrote to ``config.json``."""
    path = run_dir / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a fedntc run directory (no config.json)")
    return from_run_config(json.loads(path.read_text()))


def load_client_model(
    run_dir: Path,
    client_id: int | None = None,
    state_file: Path | None = None,
    checkpoint: Path | None = None,
) -> tuple[CompressionModel, RunConfig, KeySplit]:
    """The global transforms of ``checkpoint`` (default: the last round) with one client's
    personal entropy model (``state_file``, or client ``client_id``'s file in the run)."""
    conf = load_run_config(run_dir)
    if conf.data.source == "vectors":
        raise ValueError(
            f"{run_dir} trained the vector model (data.source=vectors); the codec codes images"
        )
    model = create_model(conf.model, seed=conf.seed)
    split = KeySplit.from_keys(model.state_dict(), conf.strategy.shared_prefixes)
    checkpoint = checkpoint or latest_checkpoint(run_dir)
    shared, _ = load_shared_checkpoint(checkpoint)
    split.check_shared_keys(shared, origin=str(checkpoint))
    if state_file is None:
        if client_id is None:
            raise ValueError("name a client (--client) or a personal state file (--state)")
        state_file = client_state_file(conf, run_dir, client_id)
    personal, _ = read_state_file(state_file, conf.model)
    model.load_state_dict(merge_state(model.state_dict(), personal, shared))
    return model, conf, split

"""Loading a client's trained model from a run directory: the server's shared weights of
one round plus the client's personal state."""

from __future__ import annotations

from pathlib import Path

from compressai.models import CompressionModel

from common.config import RunConfig
from common.model import create_model
from common.run_folder import RunFolder, load_shared_checkpoint, read_state_file
from common.split import KeySplit, merge_state


def load_client_model(
    run_dir: Path,
    client_id: int | None = None,
    state_file: Path | None = None,
    checkpoint: Path | None = None,
) -> tuple[CompressionModel, RunConfig, KeySplit]:
    """The global transforms of ``checkpoint`` (default: the last round) with one client's
    personal entropy model (``state_file``, or client ``client_id``'s file in the run)."""
    folder = RunFolder(run_dir)
    conf = folder.read_config()
    if conf.data.source == "vectors":
        raise ValueError(
            f"{run_dir} trained the vector model (data.source=vectors); the codec codes images"
        )
    model = create_model(conf.model, seed=conf.seed)
    split = KeySplit.from_keys(model.state_dict(), conf.strategy.shared_prefixes)
    checkpoint = checkpoint or folder.latest_checkpoint()
    shared, _ = load_shared_checkpoint(checkpoint)
    split.check_shared_keys(shared, origin=str(checkpoint))
    if state_file is None:
        if client_id is None:
            raise ValueError("name a client (--client) or a personal state file (--state)")
        state_file = folder.client_state_file(conf, client_id)
    personal, _ = read_state_file(state_file, conf.model)
    model.load_state_dict(merge_state(model.state_dict(), personal, shared))
    return model, conf, split

"""Checks run before anything starts: the model builds, the key split is valid and every
client's data can be read."""

from __future__ import annotations

from .config import RunConfig
from .data import load_client_data
from .init import initial_model
from .split import KeySplit


def preflight(conf: RunConfig, check_data: bool = True) -> KeySplit:
    """Raise a clear error now rather than inside a client process later."""
    model = initial_model(conf.model, seed=conf.seed, lmbda=conf.train.lmbda)
    split = KeySplit.from_keys(model.state_dict(), conf.strategy.shared_prefixes)
    if conf.data.source == "hf" and not conf.data.hf_dataset:
        raise ValueError("data.source=hf needs 'data.hf_dataset' (a dataset name or 'imagefolder')")
    if check_data and conf.data.source != "hf":
        for client_id in range(conf.data.num_clients):
            data = load_client_data(conf.data, client_id, conf.seed)
            if not data.train or not data.test:
                raise ValueError(f"client {client_id} ({data.name}) has no train or test images")
    return split

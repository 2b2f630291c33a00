"""Where a run writes its outputs and where clients keep their personal state."""

from __future__ import annotations

import os
from pathlib import Path

from .config import RunConfig, run_key


def fedntc_home() -> Path:
    """Root for runs that name no ``output_dir``: ``$FEDNTC_HOME`` or ``~/.fedntc``."""
    return Path(os.environ.get("FEDNTC_HOME", Path.home() / ".fedntc")).expanduser()


def run_dir(conf: RunConfig, run_id: int) -> Path:
    """``output_dir`` if set, else ``<fedntc home>/runs/<run id>``."""
    if conf.output_dir:
        return Path(conf.output_dir).expanduser()
    return fedntc_home() / "runs" / str(run_id)


def client_state_file(conf: RunConfig, run_path: Path, client_id: int, state_dir: str = "") -> Path:
    """A client's personal-state file: ``<root>/client-<id>/personal-<run key>.pt``.

    ``state_dir`` (a SuperNode's ``--node-config state-dir``) wins over the run's
    ``state_dir``; with neither, ``<root>`` is ``client-state`` in the run directory. The run
    key (a hash of the run's config) keeps runs sharing a state dir apart, so a new run never
    starts from another run's entropy model, while a restarted or resumed run finds its own.
    """
    base = state_dir or conf.state_dir
    root = Path(base).expanduser() if base else run_path / "client-state"
    return root / f"client-{client_id}" / f"personal-{run_key(conf)}.pt"

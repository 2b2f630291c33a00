"""The one place that knows a run folder's layout; every part reads and writes it here.

    <run>/config.json                      resolved config (written by the ServerApp)
    <run>/run-uid                          the run's identity, sent to clients every round
    <run>/train.csv, evaluate.csv          one row per client and round
    <run>/rounds.csv, failures.csv         weighted means per round; clients that failed
    <run>/checkpoints/round-NNNN.pt        shared weights after each round
    <run>/client-state/client-K/personal-<run uid>.pt   a client's personal state
    <run>/summary.json                     written when the run ends

Clients may keep their personal state elsewhere (``state_dir``, a SuperNode's
``--node-config state-dir``). Every write is atomic.
"""

from __future__ import annotations

import csv
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint import atomic_save, atomic_write_csv, atomic_write_text, load_tensors
from .config import ModelConfig, RunConfig, flatten, from_run_config
from .optimizer_state import split_moments

CSV_NAMES = ("train", "evaluate", "rounds", "failures")


def fedntc_home() -> Path:
    """Root for runs that name no ``output_dir``: ``$FEDNTC_HOME`` or ``~/.fedntc``."""
    return Path(os.environ.get("FEDNTC_HOME", Path.home() / ".fedntc")).expanduser()


def model_signature(conf: ModelConfig) -> str:
    """Identifies the architecture a personal state belongs to."""
    return f"{conf.name}:N={conf.N}:M={conf.M}"


@dataclass(frozen=True)
class RunFolder:
    """A run's folder on disk (see the module docstring for the layout)."""

    path: Path

    @classmethod
    def of(cls, conf: RunConfig, run_id: int) -> RunFolder:
        """``output_dir`` if set, else ``<fedntc home>/runs/<run id>``."""
        if conf.output_dir:
            return cls(Path(conf.output_dir).expanduser())
        return cls(fedntc_home() / "runs" / str(run_id))

    # -- config and summary -------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    def write_config(self, conf: RunConfig) -> None:
        atomic_write_text(json.dumps(flatten(conf), indent=2) + "\n", self.config_file)

    def read_config(self) -> RunConfig:
        """The typed config of the run (keys added since it started read as defaults)."""
        if not self.config_file.exists():
            raise FileNotFoundError(f"{self.path} is not a fedntc run directory (no config.json)")
        return from_run_config(json.loads(self.config_file.read_text()))

    def write_summary(self, summary: dict[str, Any]) -> None:
        atomic_write_text(json.dumps(summary, indent=2) + "\n", self.summary_file)

    def read_summary(self) -> dict[str, Any] | None:
        """The summary of a finished run, or None."""
        if not self.summary_file.exists():
            return None
        return json.loads(self.summary_file.read_text())

    # -- metrics tables -----------------------------------------------------------------
    def csv_file(self, name: str) -> Path:
        return self.path / f"{name}.csv"

    def write_csv(self, name: str, rows: list[dict[str, Any]]) -> None:
        atomic_write_csv(rows, self.csv_file(name))

    def read_csv(self, name: str) -> list[dict[str, Any]]:
        """Rows of ``<name>.csv`` with numbers parsed ([] if the file does not exist)."""
        path = self.csv_file(name)
        if not path.exists():
            return []
        with path.open(newline="") as handle:
            return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]

    # -- identity ---------------------------------------------------------------------
    @property
    def run_uid_file(self) -> Path:
        return self.path / "run-uid"

    def start_run(self, resume: bool) -> str:
        """The run's uid: read back when resuming, else a new one (a new run in an old
        folder gets a new identity, so no client continues the old run's state)."""
        if resume and self.run_uid_file.exists():
            return self.read_run_uid()
        uid = uuid.uuid4().hex[:16]
        atomic_write_text(uid, self.run_uid_file)
        return uid

    def read_run_uid(self) -> str:
        if not self.run_uid_file.exists():
            raise FileNotFoundError(f"{self.path} has no run-uid: not a fedntc run folder")
        return self.run_uid_file.read_text().strip()

    # -- shared checkpoints -------------------------------------------------------------
    def checkpoint_file(self, server_round: int) -> Path:
        return self.path / "checkpoints" / f"round-{server_round:04d}.pt"

    def save_checkpoint(
        self,
        server_round: int,
        shared: dict[str, torch.Tensor],
        method: str,
        server_state: dict[str, torch.Tensor] | None = None,
    ) -> Path:
        """Save a round's shared weights (and the server optimizer's state) atomically."""
        path = self.checkpoint_file(server_round)
        saved = {"round": server_round, "method": method, "shared": shared}
        atomic_save({**saved, "server": server_state or {}}, path)
        return path

    def latest_checkpoint(self) -> Path:
        """The last ``checkpoints/round-NNNN.pt``."""
        found = sorted((self.path / "checkpoints").glob("round-*.pt"))
        if not found:
            raise FileNotFoundError(f"no checkpoints/round-*.pt under run directory {self.path}")
        return found[-1]

    def rounds_done(self) -> int:
        """The last round checkpointed (0 if none)."""
        try:
            return int(self.latest_checkpoint().stem.removeprefix("round-"))
        except FileNotFoundError:
            return 0

    # -- personal state -----------------------------------------------------------------
    def client_state_file(
        self, conf: RunConfig, client_id: int, state_dir: str = "", run_uid: str = ""
    ) -> Path:
        """A client's personal-state file: ``<root>/client-<id>/personal-<run uid>.pt``.

        ``state_dir`` (a SuperNode's ``--node-config state-dir``) wins over the run's
        ``state_dir``; with neither, ``<root>`` is ``client-state`` in the run folder. The
        run uid (sent by the server; default: read from this folder) keeps runs sharing a
        state dir apart, the same config run twice included.
        """
        base = state_dir or conf.state_dir
        root = Path(base).expanduser() if base else self.path / "client-state"
        uid = run_uid or self.read_run_uid()
        return root / f"client-{client_id}" / f"personal-{uid}.pt"


def load_server_state(path: Path) -> dict[str, torch.Tensor]:
    """The server optimizer's state saved with a round checkpoint (none before it was kept)."""
    saved = load_tensors(path)
    return dict(saved.get("server", {})) if isinstance(saved, dict) else {}


def load_shared_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """Shared weights saved after a round, and that round."""
    saved = load_tensors(path)
    if not isinstance(saved, dict) or "shared" not in saved or "round" not in saved:
        raise ValueError(f"{path} is not a fedntc round checkpoint")
    return dict(saved["shared"]), int(saved["round"])


def read_state_versions(
    state_file: Path, model_conf: ModelConfig
) -> tuple[str, list[tuple[int, dict[str, torch.Tensor]]]]:
    """The run uid a personal state file belongs to and its versions, newest first, each
    with the round it was saved after (checked against the model)."""
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
    versions = [(int(saved.get("round", 0)), dict(saved["state"]))]
    previous = saved.get("previous")
    if previous:
        versions.append((int(previous["round"]), dict(previous["state"])))
    return str(saved.get("run", "")), versions


def read_state_file(
    state_file: Path, model_conf: ModelConfig
) -> tuple[dict[str, torch.Tensor], int]:
    """The model entries of the newest personal state in a file written by
    :func:`write_state_file` (its optimizer moments left out), and the round it was saved
    after."""
    _, versions = read_state_versions(state_file, model_conf)
    round_, state = versions[0]
    return split_moments(state)[0], round_


def write_state_file(
    state_file: Path,
    state: dict[str, torch.Tensor],
    model_conf: ModelConfig,
    server_round: int,
    run_uid: str = "",
    previous: tuple[int, dict[str, torch.Tensor]] | None = None,
) -> None:
    """Write a personal state atomically, tagged with its architecture, run and round, with
    the ``previous`` version (the one it was trained from), so that a server resumed from
    the checkpoint before ``server_round`` finds the state that matches it."""
    saved: dict[str, Any] = {
        "model": model_signature(model_conf),
        "run": run_uid,
        "round": server_round,
        "state": state,
        "previous": {"round": previous[0], "state": previous[1]} if previous else None,
    }
    atomic_save(saved, state_file)


def _number(text: str) -> Any:
    """CSV cell back to int / float where it is one."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text

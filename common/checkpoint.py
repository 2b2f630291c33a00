"""Atomic saving of tensors: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` so that readers see either the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(text: str, path: Path) -> None:
    """Write a text file atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_tensors(path: Path) -> Any:
    """Load a file written by :func:`atomic_save` (tensors and plain values only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt file
        raise ValueError(f"cannot read state file {path}: {err}") from err


def latest_checkpoint(run_dir: Path) -> Path:
    """The last ``checkpoints/round-NNNN.pt`` of a run directory."""
    found = sorted((run_dir / "checkpoints").glob("round-*.pt"))
    if not found:
        raise FileNotFoundError(f"no checkpoints/round-*.pt under run directory {run_dir}")
    return found[-1]


def load_shared_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """Shared weights saved by the server after a round, and that round."""
    saved = load_tensors(path)
    if not isinstance(saved, dict) or "shared" not in saved or "round" not in saved:
        raise ValueError(f"{path} is not a fedntc round checkpoint")
    return dict(saved["shared"]), int(saved["round"])

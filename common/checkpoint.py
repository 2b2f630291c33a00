"""Atomic saving of tensors: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` so that readers see either the old or the new file."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def atomic_write_bytes(data: bytes, path: Path) -> None:
    """Write a file so that readers see either the old or the new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(text: str, path: Path) -> None:
    """Write a text file atomically."""
    atomic_write_bytes(text.encode("utf-8"), path)


def atomic_write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Write dict rows as CSV atomically; columns are the union of the rows' keys."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(buffer.getvalue(), path)


def load_tensors(path: Path) -> Any:
    """Load a file written by :func:`atomic_save` (tensors and plain values only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt file
        raise ValueError(f"cannot read state file {path}: {err}") from err

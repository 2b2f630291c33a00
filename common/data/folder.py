"""One image folder per client, with ``train/`` and ``test/`` subfolders (deployment case)."""

from __future__ import annotations

from pathlib import Path

from .images import list_images


def client_folder(root: str, client_id: int, data_dir: str = "") -> Path:
    """The client's folder: ``data_dir`` if given (a SuperNode's own), else the
    ``client_id``-th subfolder (sorted by name) of ``root``."""
    if data_dir:
        return Path(data_dir).expanduser()
    if not root:
        raise ValueError("data.source=folder needs 'data.root' or a node-config 'data-dir'")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise FileNotFoundError(f"data.root {base} does not exist")
    clients = sorted(p for p in base.iterdir() if p.is_dir() and (p / "train").is_dir())
    if client_id >= len(clients):
        raise ValueError(
            f"data.root {base} has {len(clients)} client folders with train/ "
            f"({[p.name for p in clients]}); client {client_id} has none"
        )
    return clients[client_id]


def folder_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """Train and test image paths of a client folder."""
    return list_images(folder / "train"), list_images(folder / "test")

"""One image folder per client, with ``train/`` and ``test/`` subfolders (deployment case).

A folder can also be split into several clients (``data.clients_per_folder``): same-domain
clients with disjoint, few training images each (``data.train_images``), all tested on the
folder's held-out test images; the regime where sharing transforms should pay.
"""

from __future__ import annotations

import random
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


def training_share(
    images: list[Path], part: int, parts: int, count: int, seed: int, folder: Path
) -> list[Path]:
    """Client ``part`` of ``parts``' training images: ``count`` of them (0: an equal share of
    all), disjoint from the other parts, drawn by a shuffle seeded with ``seed`` (the data
    source seed, so that run seeds change the training, not the data)."""
    order = sorted(images)
    random.Random(f"{seed}:{folder.name}").shuffle(order)
    if count == 0:
        return order[part::parts]
    if count * parts > len(order):
        raise ValueError(
            f"{folder / 'train'} has {len(order)} images; data.clients_per_folder={parts} "
            f"clients with data.train_images={count} each need {count * parts}"
        )
    return order[part * count : (part + 1) * count]

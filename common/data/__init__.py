"""Client data: each client's training crops and full-size test images (or, for the
vector source, its training and test vectors)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from ..config import DataConfig
from ..vector_model import as_batch
from . import bundled, folder, synthetic, vectors
from .images import load_images


@dataclass
class ClientData:
    """One client's samples: uint8 images ``[3, H, W]`` (``kind="images"``) or float
    vectors ``[dim]`` (``kind="vectors"``)."""

    name: str
    train: list[torch.Tensor]
    test: list[torch.Tensor]
    kind: str = "images"


class RandomCrops(Dataset):
    """Random crops of the client's training images (padded by reflection if smaller).

    Crop positions come from the dataset's own seeded generator, not the global RNG.
    """

    def __init__(self, images: list[torch.Tensor], crop_size: int, seed: int) -> None:
        self.images = images
        self.size = crop_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = self.images[index]
        pad_h, pad_w = max(0, self.size - image.shape[1]), max(0, self.size - image.shape[2])
        if pad_h or pad_w:
            image = v2.functional.pad(image, [0, 0, pad_w, pad_h], padding_mode="reflect")
        top = int(torch.randint(0, image.shape[1] - self.size + 1, (1,), generator=self.generator))
        left = int(torch.randint(0, image.shape[2] - self.size + 1, (1,), generator=self.generator))
        crop = image[:, top : top + self.size, left : left + self.size]
        return crop.float().div_(255.0)


def generated(
    name: str, make: Callable[..., list[torch.Tensor]], conf: DataConfig, kind: str = "images"
) -> ClientData:
    """A generated source's client data: ``make(count, split=...)`` draws each split."""
    return ClientData(
        name, make(conf.train_size, split="train"), make(conf.test_size, split="test"), kind
    )


def client_name(conf: DataConfig, client_id: int) -> str:
    """A client's name without loading its data: its domain (``bundled``) or folder
    (``folder``), else ``client N``; ``client N`` too when the folder is not here."""
    if conf.source == "bundled" and client_id < len(bundled.DOMAINS):
        return list(bundled.DOMAINS)[client_id]
    if conf.source == "folder":
        try:
            name = folder.client_folder(conf.root, client_id // conf.clients_per_folder).name
        except (OSError, ValueError):
            return f"client {client_id}"
        return folder_part_name(conf, name, client_id)
    return f"client {client_id}"


def folder_part_name(conf: DataConfig, name: str, client_id: int) -> str:
    """A folder client's name: the folder's, with ``-k`` for the k-th client of a split one."""
    if conf.clients_per_folder == 1:
        return name
    return f"{name}-{client_id % conf.clients_per_folder}"


def folder_client(conf: DataConfig, client_id: int, data_dir: str) -> ClientData:
    """A ``folder`` client: its folder, or its share of a folder split into several clients."""
    parts = conf.clients_per_folder
    if data_dir and parts > 1:
        raise ValueError(
            "node-config data-dir is a SuperNode's own folder; data.clients_per_folder="
            f"{parts} splits the folders of data.root in a simulation"
        )
    path = folder.client_folder(conf.root, client_id // parts, data_dir)
    train, test = folder.folder_files(path)
    if parts > 1 or conf.train_images:
        part = client_id % parts
        train = folder.training_share(train, part, parts, conf.train_images, conf.source_seed, path)
    return ClientData(
        folder_part_name(conf, path.name, client_id),
        load_images(train, conf.max_side),
        load_images(test, conf.max_side),
    )


def load_client_data(conf: DataConfig, client_id: int, seed: int, data_dir: str = "") -> ClientData:
    """Load one client's train and test images from the configured source.

    Args:
        conf: the ``data`` section of the run config.
        client_id: the client's partition id (0-based).
        seed: run seed (synthetic source and partitioners).
        data_dir: a SuperNode's own data folder (``folder`` source), overrides ``data.root``.
    """
    if not 0 <= client_id < conf.num_clients:
        raise ValueError(f"client id {client_id} outside data.num_clients={conf.num_clients}")
    if conf.source == "synthetic":
        data = generated(
            f"synthetic-{client_id}",
            partial(
                synthetic.client_images,
                client_id,
                latent_dim=conf.latent_dim,
                image_size=conf.image_size,
                heterogeneity=conf.heterogeneity,
                seed=seed,
            ),
            conf,
        )
    elif conf.source == "vectors":
        data = generated(
            f"vectors-{client_id}",
            partial(
                vectors.client_vectors,
                client_id,
                dim=conf.latent_dim,
                heterogeneity=conf.heterogeneity,
                source_seed=conf.source_seed,
                seed=seed,
            ),
            conf,
            kind="vectors",
        )
    elif conf.source == "bundled":
        name, train, test = bundled.domain_files(client_id, conf.num_clients)
        data = ClientData(name, load_images(train, conf.max_side), load_images(test, conf.max_side))
    elif conf.source == "folder":
        data = folder_client(conf, client_id, data_dir)
    else:
        from .hf import hf_client_images  # heavy import (datasets, pyarrow) only when used

        train_images, test_images = hf_client_images(conf, client_id, seed)
        data = ClientData(f"{conf.hf_dataset}-{client_id}", train_images, test_images)
    if conf.test_max_images > 0:
        data.test = data.test[: conf.test_max_images]
    return data


def train_batches(
    images: list[torch.Tensor], crop_size: int, batch_size: int, seed: int
) -> Iterator[torch.Tensor]:
    """Endless shuffled batches of random crops (a new epoch when one runs out)."""
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        RandomCrops(images, crop_size, seed + 1),
        batch_size=batch_size,
        shuffle=True,
        drop_last=len(images) >= batch_size,
        generator=generator,
    )
    while True:
        yield from loader


def vector_batches(
    samples: list[torch.Tensor], batch_size: int, seed: int
) -> Iterator[torch.Tensor]:
    """Endless shuffled batches ``[batch, dim, 1, 1]`` of the client's vectors."""
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(
        torch.stack(samples),
        batch_size=batch_size,
        shuffle=True,
        drop_last=len(samples) >= batch_size,
        generator=generator,
    )
    while True:
        for batch in loader:
            yield as_batch(batch)


def client_batches(data: ClientData, conf: DataConfig, seed: int) -> Iterator[torch.Tensor]:
    """Endless training batches of one client: random crops of images, or vectors."""
    if data.kind == "vectors":
        return vector_batches(data.train, conf.batch_size, seed)
    return train_batches(data.train, conf.crop_size, conf.batch_size, seed)

"""Any Hugging Face image dataset the user has locally, split across clients with
flwr-datasets partitioners (IID, Dirichlet over labels, pathological)."""

from __future__ import annotations

import numpy as np
import torch
from flwr_datasets import FederatedDataset
from flwr_datasets.partitioner import (
    DirichletPartitioner,
    IidPartitioner,
    Partitioner,
    PathologicalPartitioner,
)

from ..config import DataConfig
from .images import ImageLoadError, to_rgb


def make_partitioner(conf: DataConfig, seed: int) -> Partitioner:
    """The flwr-datasets partitioner named by ``data.partitioner``."""
    if conf.partitioner == "iid":
        return IidPartitioner(num_partitions=conf.num_clients)
    if conf.partitioner == "dirichlet":
        return DirichletPartitioner(
            num_partitions=conf.num_clients,
            partition_by=conf.label_key,
            alpha=conf.alpha,
            min_partition_size=1,
            seed=seed,
        )
    return PathologicalPartitioner(
        num_partitions=conf.num_clients,
        partition_by=conf.label_key,
        num_classes_per_partition=conf.classes_per_client,
        seed=seed,
    )


def hf_client_images(
    conf: DataConfig, client_id: int, seed: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Train and test images (uint8 ``[3, H, W]``) of one partition."""
    if not conf.hf_dataset:
        raise ValueError("data.source=hf needs 'data.hf_dataset' (a dataset name or 'imagefolder')")
    kwargs = {"data_dir": conf.hf_data_dir} if conf.hf_data_dir else {}
    fds = FederatedDataset(
        dataset=conf.hf_dataset,
        partitioners={conf.hf_split: make_partitioner(conf, seed)},
        seed=seed,
        **kwargs,
    )
    try:
        partition = fds.load_partition(client_id, conf.hf_split)
    except (KeyError, ValueError) as err:
        raise ValueError(
            f"{conf.hf_dataset}: cannot load partition {client_id} of split {conf.hf_split!r} "
            f"with data.partitioner={conf.partitioner} by data.label_key {conf.label_key!r}: {err}"
        ) from err
    if conf.image_key not in partition.column_names:
        raise KeyError(
            f"data.image_key {conf.image_key!r} is not a column of {conf.hf_dataset}; "
            f"columns: {partition.column_names}"
        )
    if len(partition) < 2:
        raise ValueError(f"partition {client_id} of {conf.hf_dataset} has {len(partition)} images")
    split = partition.train_test_split(test_size=conf.test_fraction, seed=seed)

    def convert(rows) -> list[torch.Tensor]:
        out = []
        for index, image in enumerate(rows[conf.image_key]):
            try:
                array = np.array(to_rgb(image), dtype=np.uint8)
            except (OSError, ValueError) as err:
                raise ImageLoadError(f"{conf.hf_dataset} row {index}: {err}") from err
            out.append(torch.from_numpy(array).permute(2, 0, 1).contiguous())
        return out

    return convert(split["train"]), convert(split["test"])

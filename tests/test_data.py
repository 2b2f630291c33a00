from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.config import DataConfig
from common.data import load_client_data, train_batches
from common.data.images import ImageLoadError, load_image


def synthetic(**kw):
    base = dict(
        source="synthetic", num_clients=3, image_size=16, latent_dim=8, train_size=64, test_size=4
    )
    return DataConfig(**{**base, **kw})


def test_synthetic_source_is_deterministic_and_heterogeneous():
    a = load_client_data(synthetic(), 0, seed=3)
    b = load_client_data(synthetic(), 0, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.train, b.train, strict=True))
    means = [
        torch.stack(load_client_data(synthetic(), k, 3).train).float().mean().item()
        for k in range(3)
    ]
    assert max(means) - min(means) > 2.0  # clients' pixel statistics differ
    same = [
        torch.stack(load_client_data(synthetic(heterogeneity=0.0), k, 3).train).float().mean(0)
        for k in range(3)
    ]
    # with no heterogeneity every client draws from one law: means agree closely
    assert (same[0] - same[1]).abs().mean() < (torch.stack(a.train).float().std() / 2)
    assert not torch.equal(a.train[0], a.test[0])


def test_bundled_domains_are_real_rgb_images():
    conf = DataConfig(source="bundled", num_clients=4, max_side=128)
    names = set()
    for k in range(4):
        data = load_client_data(conf, k, seed=0)
        names.add(data.name)
        assert data.train and data.test
        assert all(
            x.shape[0] == 3 and max(x.shape[1:]) <= 128 and x.dtype == torch.uint8
            for x in data.train
        )
    assert names == {"photos", "textures", "grayscale", "science"}
    with pytest.raises(ValueError, match="num_clients=5"):
        load_client_data(DataConfig(source="bundled", num_clients=5), 0, 0)


def write_png(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def test_folder_source_converts_gray_and_rgba(tmp_path):
    rng = np.random.default_rng(0)
    client = tmp_path / "root" / "client-a"
    write_png(client / "train" / "gray.png", rng.integers(0, 255, (20, 30), dtype=np.uint8))
    write_png(client / "train" / "rgba.png", rng.integers(0, 255, (20, 30, 4), dtype=np.uint8))
    write_png(client / "test" / "rgb.png", rng.integers(0, 255, (24, 24, 3), dtype=np.uint8))
    conf = DataConfig(source="folder", root=str(tmp_path / "root"), num_clients=1)
    data = load_client_data(conf, 0, seed=0)
    assert [tuple(x.shape) for x in data.train] == [(3, 20, 30), (3, 20, 30)]
    gray = data.train[0]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    # a node's own data dir wins over data.root
    same = load_client_data(DataConfig(source="folder", num_clients=1), 0, 0, data_dir=str(client))
    assert torch.equal(same.test[0], data.test[0])


def test_corrupt_image_is_reported_by_path(tmp_path):
    bad = tmp_path / "root" / "c" / "train" / "broken.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (tmp_path / "root" / "c" / "test").mkdir()
    write_png(tmp_path / "root" / "c" / "test" / "ok.png", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(ImageLoadError, match="broken.png"):
        load_client_data(
            DataConfig(source="folder", root=str(tmp_path / "root"), num_clients=1), 0, 0
        )
    with pytest.raises(ImageLoadError, match="broken.png"):
        load_image(bad)


def test_missing_folder_is_named(tmp_path):
    conf = DataConfig(source="folder", num_clients=1)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_client_data(conf, 0, 0, data_dir=str(tmp_path / "nowhere"))


def test_train_batches_pad_small_images_and_cycle():
    images = [torch.randint(0, 255, (3, 20, 20), dtype=torch.uint8) for _ in range(3)]
    batches = train_batches(images, crop_size=32, batch_size=2, seed=0)
    shapes = [next(batches).shape for _ in range(5)]  # more batches than one epoch holds
    assert all(s[1:] == (3, 32, 32) for s in shapes)


def write_imagefolder(root, labels, count: int, side: int) -> None:
    """``count`` random RGB PNGs of ``side`` x ``side`` per label folder (an imagefolder)."""
    rng = np.random.default_rng(0)
    for label in labels:
        for i in range(count):
            write_png(root / label / f"{i}.png", rng.integers(0, 255, (side, side, 3), np.uint8))


@pytest.mark.parametrize("partitioner", ["iid", "dirichlet"])
def test_hf_imagefolder_partitions(tmp_path, partitioner):
    """flwr-datasets on a local imagefolder: every image lands in exactly one client."""
    write_imagefolder(tmp_path / "ds", ("cats", "dogs", "owls"), count=12, side=16)
    conf = DataConfig(
        source="hf",
        hf_dataset="imagefolder",
        hf_data_dir=str(tmp_path / "ds"),
        num_clients=3,
        partitioner=partitioner,
        alpha=1.0,
        test_fraction=0.25,
    )
    sizes = []
    for k in range(3):
        data = load_client_data(conf, k, seed=0)
        assert data.train[0].shape == (3, 16, 16)
        sizes.append(len(data.train) + len(data.test))
    assert sum(sizes) == 36
    if partitioner == "iid":
        assert sizes == [12, 12, 12]


def test_train_batches_are_seeded_and_leave_the_global_rng_alone():
    images = [torch.randint(0, 255, (3, 40, 50), dtype=torch.uint8) for _ in range(4)]
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = next(train_batches(images, 16, 4, seed=7))
    assert torch.equal(torch.rand(1), before), "train_batches consumed the global RNG"
    assert torch.equal(first, next(train_batches(images, 16, 4, seed=7)))
    assert not torch.equal(first, next(train_batches(images, 16, 4, seed=8)))


def test_hf_wrong_label_key_is_named(tmp_path):
    write_imagefolder(tmp_path / "ds", ("a", "b"), count=6, side=8)
    conf = DataConfig(
        source="hf",
        hf_dataset="imagefolder",
        hf_data_dir=str(tmp_path / "ds"),
        num_clients=2,
        partitioner="dirichlet",
        label_key="species",
    )
    with pytest.raises(ValueError, match="species"):
        load_client_data(conf, 0, seed=0)


FEDIMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "fedimages"


@pytest.mark.skipif(
    not FEDIMAGES.is_dir(), reason="../shared/data/fedimages is not beside this checkout"
)
def test_fedimages_domains_load_as_folder_clients():
    conf = DataConfig(source="folder", root=str(FEDIMAGES), num_clients=4, max_side=128)
    names = [load_client_data(conf, k, seed=0).name for k in range(4)]
    assert names == ["aerials", "grayscale-photos", "photos", "textures"]
    gray = load_client_data(conf, 1, seed=0).train[0]
    assert gray.shape[0] == 3 and torch.equal(gray[0], gray[2])
    # the data-scarce setting: 8 clients, 2 per domain, 4 training images each
    scarce = DataConfig(
        source="folder", root=str(FEDIMAGES), num_clients=8, clients_per_folder=2,
        train_images=4, max_side=64,
    )  # fmt: skip
    clients = [load_client_data(scarce, k, seed=0) for k in range(8)]
    assert [c.name for c in clients][:2] == ["aerials-0", "aerials-1"]
    assert all(len(c.train) == 4 for c in clients)


def test_client_names_are_domains_or_folders_without_loading_images(tmp_path):
    from common.config import DataConfig
    from common.data import bundled, client_name

    bundled_conf = DataConfig(source="bundled", num_clients=4)
    assert [client_name(bundled_conf, k) for k in range(4)] == list(bundled.DOMAINS)[:4]
    for name in ("b-scans", "a-photos"):
        (tmp_path / name / "train").mkdir(parents=True)
    folders = DataConfig(source="folder", root=str(tmp_path), num_clients=2)
    assert [client_name(folders, k) for k in range(2)] == ["a-photos", "b-scans"]
    gone = DataConfig(source="folder", root=str(tmp_path / "elsewhere"), num_clients=2)
    assert client_name(gone, 1) == "client 1"  # a report redrawn on another machine
    assert client_name(DataConfig(source="vectors", num_clients=2), 0) == "client 0"


def write_domains(root, train: int, test: int) -> None:
    """Two domain folders of distinct, numbered 8x8 PNGs (pixel value = image number)."""
    for d, domain in enumerate(("aerials", "textures")):
        for split, count in (("train", train), ("test", test)):
            for i in range(count):
                value = np.full((8, 8, 3), 100 * d + i + (50 if split == "test" else 0), np.uint8)
                write_png(root / domain / split / f"{i:02d}.png", value)


def test_a_split_folder_gives_same_domain_clients_disjoint_few_images(tmp_path):
    write_domains(tmp_path, train=7, test=3)
    conf = DataConfig(
        source="folder", root=str(tmp_path), num_clients=4, clients_per_folder=2, train_images=3
    )
    clients = [load_client_data(conf, k, seed=0) for k in range(4)]
    assert [c.name for c in clients] == ["aerials-0", "aerials-1", "textures-0", "textures-1"]
    ids = [{int(x[0, 0, 0]) for x in c.train} for c in clients]
    assert [len(i) for i in ids] == [3, 3, 3, 3]
    assert not ids[0] & ids[1] and not ids[2] & ids[3]  # disjoint within a domain
    assert all(i < 100 for i in ids[0] | ids[1]) and all(i >= 100 for i in ids[2] | ids[3])
    # every client of a domain is tested on all of that domain's held-out images
    assert all(torch.equal(a, b) for a, b in zip(clients[0].test, clients[1].test, strict=True))
    assert len(clients[0].test) == 3
    # the split is the data's (data.source_seed), not the run seed's
    again = load_client_data(conf, 1, seed=5)
    assert {int(x[0, 0, 0]) for x in again.train} == ids[1]
    from common.data import client_name

    assert [client_name(conf, k) for k in range(4)] == [c.name for c in clients]


def test_a_split_that_needs_more_images_than_the_folder_has_names_it(tmp_path):
    write_domains(tmp_path, train=5, test=1)
    conf = DataConfig(
        source="folder", root=str(tmp_path), num_clients=4, clients_per_folder=2, train_images=3
    )
    with pytest.raises(ValueError, match=r"aerials/train has 5 images.*need 6"):
        load_client_data(conf, 0, seed=0)
    whole = DataConfig(source="folder", root=str(tmp_path), num_clients=4, clients_per_folder=2)
    sizes = [len(load_client_data(whole, k, 0).train) for k in range(2)]
    assert sizes == [3, 2]  # train_images=0: an equal share of all, every image used once
    with pytest.raises(ValueError, match="data-dir"):
        load_client_data(whole, 0, 0, data_dir=str(tmp_path / "aerials"))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"source": "bundled", "train_images": 2}, "data.source=folder"),
        ({"source": "folder", "clients_per_folder": 0}, "must be >= 1"),
        ({"source": "folder", "num_clients": 4, "clients_per_folder": 3}, "not a multiple"),
    ],
)
def test_split_settings_are_checked(data, match):
    from common.config import ConfigError, RunConfig, StrategyConfig

    with pytest.raises(ConfigError, match=match):
        RunConfig(data=DataConfig(**data), strategy=StrategyConfig(min_clients=1))

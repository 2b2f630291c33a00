"""fedntc-pretrain: exact resume, refusal of another config's folder, exported base model."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from common.coding import Codec
from common.config import ConfigError, ModelConfig
from common.init import initial_model
from pretrain.cli import run

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> Path:
    """train/ and val/ folders of small random-texture images (RGB and grayscale)."""
    root = tmp_path_factory.mktemp("pretrain-data")
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        (root / split).mkdir()
        for i in range(count):
            smooth = rng.integers(0, 255, (6, 5, 3), dtype=np.uint8)
            image = Image.fromarray(smooth).resize((40 + 8 * i, 36), Image.Resampling.BICUBIC)
            (image.convert("L") if i == 1 else image).save(root / split / f"{i}.png")
    return root


def compose_pretrain(folders: Path, out: Path, *overrides: str):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose(
            "pretrain",
            overrides=[
                "model=tiny",
                f"data.train_dir={folders / 'train'}",
                f"data.val_dir={folders / 'val'}",
                "data.crop_size=32",
                "data.batch_size=2",
                "train.device=cpu",
                "steps=4",
                "decay_steps=1",
                "validate_every=4",
                "checkpoint_every=2",
                f"out_dir={out}",
                *overrides,
            ],
        )


def saved(out: Path) -> dict:
    return torch.load(out / "checkpoint.pt", weights_only=True)


def test_resume_continues_exactly_where_it_stopped(folders, tmp_path):
    straight = tmp_path / "straight"
    run(compose_pretrain(folders, straight), progress=False)
    pieces = tmp_path / "pieces"
    run(compose_pretrain(folders, pieces, "steps=2", "decay_steps=0"), progress=False)
    assert saved(pieces)["step"] == 2
    last = run(compose_pretrain(folders, pieces), progress=False)
    assert last["step"] == 4
    a, b = saved(straight), saved(pieces)
    assert b["step"] == 4
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for name in ("optimizer", "aux_optimizer"):
        for index, state in a[name]["state"].items():
            for key, value in state.items():
                assert torch.equal(value, b[name]["state"][index][key]), (name, index, key)
    rows = (pieces / "val.csv").read_text().splitlines()
    assert rows[0].startswith("step,real_bpp") and rows[-1].startswith("4,")


def test_folder_of_another_config_is_refused(folders, tmp_path):
    out = tmp_path / "run"
    run(compose_pretrain(folders, out, "steps=2", "decay_steps=0"), progress=False)
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(ConfigError, match=r"train\.lmbda: 0\.0067 there, 0\.02 here"):
        run(compose_pretrain(folders, out, "train.lmbda=0.02"), progress=False)
    with pytest.raises(ConfigError, match="lr of steps already trained"):
        run(compose_pretrain(folders, out, "steps=2", "decay_steps=2"), progress=False)
    assert (out / "checkpoint.pt").read_bytes() == before


def test_exported_base_codes_bit_exactly(folders, tmp_path):
    out, base = tmp_path / "run", tmp_path / "base.pt"
    run(compose_pretrain(folders, out, f"export_to={base}"), progress=False)
    encoder = Codec.from_model(initial_model(ModelConfig(N=8, M=12, init=str(base))))
    decoder = Codec.from_model(initial_model(ModelConfig(N=8, M=12, init=str(base))))
    image = Image.open(folders / "val" / "0.png").convert("RGB")
    bits = encoder.encode(image)  # a separately loaded decoder must accept and match it
    assert decoder.fingerprint == encoder.fingerprint
    assert np.array_equal(np.asarray(decoder.decode(bits)), np.asarray(encoder.decode(bits)))

"""The base models committed under ``models/`` load and code an image to a bitstream and back,
bit-exactly across two independently loaded copies (encoder and decoder machines)."""

import pytest
import torch

from common.checkpoint import load_tensors
from common.coding import Codec, code_image
from common.config import DataConfig
from common.data import load_client_data
from common.init import BASE_FORMAT, MODELS_DIR, load_model_file
from common.metrics import psnr

SHIPPED = sorted(MODELS_DIR.glob("*.pt"))


def test_at_least_one_base_model_ships():
    assert SHIPPED, f"no base model in {MODELS_DIR}"
    assert sum(p.stat().st_size for p in SHIPPED) < 20 * 2**20


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_base_codes_an_image_and_back(path):
    saved = load_tensors(path)
    assert saved["format"] == BASE_FORMAT
    assert {"name", "N", "M", "lmbda", "steps"} <= set(saved["meta"])
    photo = load_client_data(DataConfig(source="bundled", max_side=256), 0, 0).test[0]
    image = photo[:, :128, :128]
    encoder, decoder = load_model_file(path), load_model_file(path)
    for model in (encoder, decoder):
        model.eval()
        model.update(force=True)
    x = image.float().div(255).unsqueeze(0)
    with torch.no_grad():
        encoded = encoder.compress(x)
        mine = encoder.decompress(encoded["strings"], encoded["shape"])["x_hat"]
        theirs = decoder.decompress(encoded["strings"], encoded["shape"])["x_hat"]
    assert torch.equal(mine, theirs)
    result = code_image(Codec.from_model(encoder), image).result
    assert 0.05 < result.real_bpp < 2.0
    decoded = theirs.clamp(0, 1).mul(255).round().div(255)  # the 8-bit image a file decodes to
    assert result.psnr > 24 and psnr(x, decoded) == pytest.approx(result.psnr, abs=1e-3)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_base_is_named_by_its_size_and_lambda(path):
    meta = load_tensors(path)["meta"]
    assert path.name == f"{meta['name']}-N{meta['N']}-M{meta['M']}-l{meta['lmbda']}.pt"

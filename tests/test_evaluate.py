import json

import pytest
import torch

import study.classic
from common.coding import (
    Codec,
    PillowCodec,
    code_image,
    evaluate_image_sets,
    evaluate_images,
    mean_results,
)
from common.config import ModelConfig, TrainConfig
from common.data import train_batches
from common.evaluate import evaluate_coded
from common.metrics import multiscale_ssim, psnr_from_mse
from common.model import create_model
from common.train import round_lr, train_steps
from study.classic import cache_dir, classic_point, classic_set_curves


def smooth_images(n, h, w, seed=0):
    gen = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, max(2, h // 8), max(2, w // 8), generator=gen)
    up = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    return list((up * 255).round().to(torch.uint8))


def trained_model():
    model = create_model(ModelConfig(N=8, M=12), seed=0)
    batches = train_batches(smooth_images(16, 32, 32), 32, 8, seed=0)
    stats = train_steps(
        model, batches, TrainConfig(local_steps=60, lr=5e-3, lmbda=0.01), torch.device("cpu")
    )
    return model, stats


def test_training_lowers_the_loss():
    model = create_model(ModelConfig(N=8, M=12), seed=0)
    batches = train_batches(smooth_images(16, 32, 32), 32, 8, seed=0)
    conf = TrainConfig(local_steps=20, lr=5e-3, lmbda=0.01)
    first = train_steps(model, batches, conf, torch.device("cpu"))
    later = train_steps(model, batches, conf, torch.device("cpu"))
    assert later["loss"] < first["loss"]
    assert set(first) == {"loss", "bpp_loss", "mse_loss", "aux_loss"}


def test_non_finite_loss_stops_training_with_a_clear_error():
    model = create_model(ModelConfig(N=8, M=12), seed=0)
    images = smooth_images(8, 32, 32)

    def batches():
        for step in range(100):
            batch = torch.stack(images).float() / 255
            if step == 7:
                batch[0, 0, 0, 0] = float("nan")
            yield batch

    conf = TrainConfig(local_steps=40, lr=5e-3, lmbda=0.01)
    with pytest.raises(FloatingPointError, match="lower train.lr"):
        train_steps(model, batches(), conf, torch.device("cpu"))


def test_bitstream_decodes_to_the_reconstruction_at_any_size():
    model, _ = trained_model()
    model.eval()
    model.update(force=True)
    image = smooth_images(1, 37, 50, seed=1)[0]  # not a multiple of the stride
    coded = code_image(Codec.from_model(model), image)
    result, x_hat = coded.result, coded.x_hat
    assert x_hat.shape == (1, 3, 37, 50)
    x = image.float().div(255).unsqueeze(0)
    padded = torch.nn.functional.pad(x, (0, 14, 0, 11), mode="replicate")
    with torch.no_grad():
        forward = model(padded)["x_hat"][..., :37, :50].clamp(0, 1)
    assert torch.allclose(x_hat, forward, atol=0.5 / 255 + 1e-4)  # the 8-bit decoded file
    assert result.psnr > 10 and result.real_bpp > 0
    assert result.bytes == len(coded.data) and Codec.from_model(model).decode(coded.data)


def test_real_and_estimated_rate_agree_on_a_trained_model():
    model, _ = trained_model()
    images = smooth_images(2, 192, 192, seed=2)
    metrics = evaluate_coded(model, images)
    assert metrics["num_pixels"] == 2 * 192 * 192
    # The entropy-coded strings match the estimate; the whole file adds a small fixed header.
    stream_bits = 0
    with torch.no_grad():
        for image in images:
            encoded = model.compress(image.float().div(255).unsqueeze(0))
            stream_bits += sum(len(s[0]) * 8 for s in encoded["strings"])
    stream_bpp = stream_bits / metrics["num_pixels"]
    assert abs(stream_bpp - metrics["est_bpp"]) / metrics["est_bpp"] < 0.05
    header_bytes_per_image = (metrics["real_bpp"] - stream_bpp) * 192 * 192 / 8
    assert 0 < header_bytes_per_image < 64


@pytest.mark.parametrize("size", [(48, 48), (171, 256), (200, 171), (37, 400), (256, 256)])
def test_ms_ssim_any_image_size(size):
    x = torch.rand(1, 3, *size)
    assert multiscale_ssim(x, x) > 0.999
    noisy = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    assert multiscale_ssim(x, noisy) < 0.9
    assert torch.isnan(torch.tensor(multiscale_ssim(x[..., :8, :8], x[..., :8, :8])))


def test_round_lr_decays_only_the_last_rounds():
    constant = TrainConfig(lr=1e-3)
    assert [round_lr(constant, r, 4) for r in (1, 4)] == [1e-3, 1e-3]
    decayed = TrainConfig(lr=1e-3, lr_decay_rounds=2, lr_decay=0.1)
    assert [round_lr(decayed, r, 5) for r in range(1, 6)] == pytest.approx(
        [1e-3, 1e-3, 1e-3, 1e-4, 1e-4]
    )


def test_mean_psnr_comes_from_the_mean_mse_and_stays_finite_with_a_lossless_image():
    exact = code_image(PillowCodec("PNG", 0), smooth_images(1, 16, 16)[0]).result
    assert exact.mse == 0 and exact.psnr == float("inf")
    lossy = code_image(PillowCodec("JPEG", 10), smooth_images(1, 16, 48, seed=3)[0]).result
    assert lossy.mse > 0
    mean = mean_results([exact, lossy])
    assert mean["mse"] == pytest.approx(lossy.mse * 3 / 4)  # pixel-weighted: 256 vs 768 pixels
    assert mean["psnr"] == pytest.approx(psnr_from_mse(lossy.mse * 3 / 4))
    assert mean["real_bpp"] == pytest.approx((exact.bytes + lossy.bytes) * 8 / (256 + 768))


def test_classic_codecs_are_measured_by_the_same_function_and_charged_whole_files():
    images = smooth_images(2, 64, 64, seed=4)
    point = classic_point(images, "JPEG", 50)
    files = [code_image(PillowCodec("JPEG", 50), image).data for image in images]
    assert point["real_bpp"] == pytest.approx(sum(len(f) for f in files) * 8 / (2 * 64 * 64))
    assert all(f.startswith(b"\xff\xd8") for f in files)  # whole JPEG files, headers included


class CountingJPEG(PillowCodec):
    """Pillow's JPEG that counts the images it encodes."""

    def __init__(self, quality: int) -> None:
        super().__init__("JPEG", quality)
        object.__setattr__(self, "encoded", 0)

    def encode(self, image):
        object.__setattr__(self, "encoded", self.encoded + 1)
        return super().encode(image)


def test_image_sets_sharing_images_code_each_image_once_with_the_same_means():
    a, b, c = smooth_images(3, 32, 48, seed=5)
    sets = {"0": [a, b], "1": [a, b], "2": [c]}  # clients 0 and 1: one folder's test images
    codec = CountingJPEG(40)
    means = evaluate_image_sets(codec, sets)
    assert codec.encoded == 3
    for name, images in sets.items():
        alone = evaluate_images(PillowCodec("JPEG", 40), images)
        assert means[name] == pytest.approx(alone, nan_ok=True)
    pooled = evaluate_images(PillowCodec("JPEG", 40), [a, b, a, b, c])
    assert means["mean"] == pytest.approx(pooled, nan_ok=True)
    with pytest.raises(ValueError, match="'mean'"):
        evaluate_image_sets(codec, {"mean": [a]})
    with pytest.raises(ValueError, match="'2'"):
        evaluate_image_sets(codec, {"2": []})


def test_classic_points_are_measured_once_per_image_and_kept_on_disk(monkeypatch):
    a, b, c = smooth_images(3, 32, 48, seed=6)
    first = classic_set_curves({"0": [a, b], "1": [c]})
    files = sorted(cache_dir().glob("*.json"))
    assert len(files) == 3  # one file per distinct image

    def no_coding(*args):
        raise AssertionError("a cached point was coded again")

    monkeypatch.setattr(study.classic, "code_image", no_coding)
    again = classic_set_curves({"0": [a, b], "1": [c]})
    assert json.dumps(again) == json.dumps(first)  # the very same figures (NaN est_bpp too)
    # another grouping of the same images (other clients, splits) reads them too
    regrouped = classic_set_curves({"3": [c, a], "4": [b]})
    by_key = {(r["client"], r["method"], r["quality"]): r for r in regrouped}
    for row in first:
        if row["client"] == "mean":  # same pool of images, so the same pixel-weighted means
            pooled = by_key["mean", row["method"], row["quality"]]
            assert pooled == pytest.approx(row, nan_ok=True)
    webp = next(
        r for r in first if r["client"] == "1" and r["method"] == "WebP" and r["quality"] == 50
    )
    assert classic_point([c], "WebP", 50) == pytest.approx(
        {k: webp[k] for k in classic_point([c], "WebP", 50)}, nan_ok=True
    )


def test_an_unreadable_classic_cache_file_is_named_and_measured_again():
    (image,) = smooth_images(1, 32, 32, seed=7)
    fresh = classic_point([image], "JPEG", 50)
    (path,) = cache_dir().glob("*.json")
    path.write_text('{"JPEG/q50": {"pixels": 1')  # a write cut short
    with pytest.warns(UserWarning, match=path.name):
        again = classic_point([image], "JPEG", 50)
    assert again == pytest.approx(fresh, nan_ok=True)
    assert classic_point([image], "JPEG", 50) == pytest.approx(fresh, nan_ok=True)  # rewritten

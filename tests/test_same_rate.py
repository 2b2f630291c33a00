"""JPEG/WebP at the same rate as a learned codec: interpolation and the printed reading."""

import math

import pytest
import torch

from study.classic import classic_point
from study.same_rate import classic_at_rate, format_same_rate


@pytest.fixture(scope="module")
def images():
    generator = torch.Generator().manual_seed(0)
    smooth = torch.rand(1, 3, 12, 12, generator=generator)
    image = torch.nn.functional.interpolate(smooth, size=(96, 96), mode="bicubic")
    return [image.clamp(0, 1).mul(255).round().to(torch.uint8)[0]]


def test_classic_at_rate_interpolates_between_qualities(images):
    low, high = classic_point(images, "JPEG", 30), classic_point(images, "JPEG", 50)
    middle = (low["real_bpp"] + high["real_bpp"]) / 2
    at = classic_at_rate(images, "JPEG", middle)
    assert min(low["psnr"], high["psnr"]) <= at["psnr"] <= max(low["psnr"], high["psnr"])
    assert math.isnan(classic_at_rate(images, "JPEG", 0.001)["psnr"])  # below quality 2


def test_table_says_what_the_run_shows():
    rows = [
        {
            "method": "start (base)",
            "lmbda": math.nan,
            "real_bpp": 0.3,
            "psnr": 30.0,
            "ms_ssim": 0.97,
            "JPEG_psnr": 28.0,
            "WebP_psnr": 29.5,
        },
        {
            "method": "local",
            "lmbda": 0.0067,
            "real_bpp": 0.31,
            "psnr": 30.5,
            "ms_ssim": 0.97,
            "JPEG_psnr": 28.1,
            "WebP_psnr": math.nan,
        },
    ]
    text = format_same_rate(rows)
    assert "local at 0.310 bpp is +2.40 dB vs JPEG and n/a (outside its range) vs WebP" in text
    assert "starting point alone gives 30.00 dB at 0.300 bpp (+2.00 dB vs JPEG)" in text

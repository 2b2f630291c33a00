"""The run summary says whom its mean covers and which rounds were short."""

import math

import pytest

from server.results import format_summary, summarize
from tests.helpers import tiny_config


def eval_row(client, round_, psnr):
    return {
        "phase": "evaluate",
        "round": round_,
        "client-id": client,
        "real_bpp": 0.5,
        "est_bpp": 0.4,
        "psnr": psnr,
        "mse": 10 ** (-psnr / 10),
        "ms_ssim": 0.9,
        "num_pixels": 100.0,
    }


def test_a_client_missing_from_the_final_evaluation_is_named(tmp_path):
    conf = tiny_config(tmp_path)  # 3 clients
    rows = [eval_row(c, 1, 20.0) for c in range(3)] + [eval_row(0, 2, 30.0), eval_row(1, 2, 32.0)]
    failures = [{"phase": "evaluate", "round": 2, "node_id": 7, "reason": "no reply within 5 s"}]
    rounds = [
        {"phase": "evaluate", "round": 1, "clients": 3, "below_min_clients": False},
        {"phase": "evaluate", "round": 2, "clients": 2, "below_min_clients": True},
    ]
    summary = summarize(conf, rows, failures, 10, 1.0, rounds)
    # PSNR of the clients' pooled MSE (as JPEG/WebP are measured), not 31.0, the mean in dB
    assert summary["mean"]["psnr"] == pytest.approx(-10 * math.log10((1e-3 + 10**-3.2) / 2))
    assert 30.8 < summary["mean"]["psnr"] < 31.0
    assert summary["mean_over"] == [0, 1] and summary["missing_clients"] == [2]
    assert summary["short_rounds"] == [{"phase": "evaluate", "round": 2, "clients": 2}]
    assert summary["failures"][0]["reason"] == "no reply within 5 s"
    text = format_summary(summary)
    assert "[2] did not evaluate in the final round" in text
    assert "below strategy.min_clients" in text

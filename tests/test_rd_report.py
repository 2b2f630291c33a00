import math

import pytest

from server.rd_report import bd_rate, bd_table, curve

RATES = [0.1, 0.2, 0.4, 0.8]
PSNRS = [28.0, 31.0, 34.0, 37.0]


def rows(method, scale, seed=0, client="0"):
    return [
        {
            "method": method,
            "lmbda": lm,
            "seed": seed,
            "client": client,
            "real_bpp": r * scale,
            "psnr": p,
        }
        for lm, r, p in zip((1, 2, 3, 4), RATES, PSNRS, strict=True)
    ]


def test_bd_rate_of_a_uniform_rate_saving():
    value, status = bd_rate((RATES, PSNRS), ([r * 0.9 for r in RATES], PSNRS))
    assert status == "ok" and value == pytest.approx(-10.0, abs=0.01)


def test_bd_rate_says_why_it_cannot_compare():
    assert bd_rate((RATES[:1], PSNRS[:1]), (RATES[:1], PSNRS[:1]))[1] == "too few points"
    value, status = bd_rate((RATES, PSNRS), (RATES, [p + 20 for p in PSNRS]))
    assert status == "no overlap" and math.isnan(value)


def test_bd_table_over_seeds():
    data = (
        rows("local", 1.0, 0)
        + rows("local", 1.0, 1)
        + rows("fedavg", 1.0, 0)
        + rows("fedavg", 1.0, 1)
        + rows("personalized", 0.9, 0)
        + rows("personalized", 0.8, 1)
    )
    table = bd_table(data)
    overall = next(r for r in table if r["anchor"] == "local" and r["seed"] == "all")
    assert overall["bd_rate_percent"] == pytest.approx(-15.0, abs=0.05)
    assert overall["std_over_seeds"] == pytest.approx(5.0, abs=0.05)
    assert overall["seeds_compared"] == 2
    rates, psnrs, spread = curve(data, "personalized", "0")
    assert rates == pytest.approx([r * 0.85 for r in RATES]) and spread == [0.0] * 4

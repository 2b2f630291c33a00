"""A miniature resumable sweep through the real entry points: Hydra multirun of
`fedntc-simulate` (2 λ x 3 methods x 1 seed, tiny model), then `fedntc-report`."""

import csv
import math
import os
import subprocess

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SWEEP = [
    "fedntc-simulate",
    "-m",
    "strategy=personalized,fedavg,local",
    "train.lmbda=0.003,0.05",
    "model=tiny",
    "data=synthetic",
    "data.num_clients=2",
    "data.train_size=32",
    "data.test_size=2",
    "data.batch_size=4",
    "num_rounds=1",
    "train.local_steps=3",
    "train.device=cpu",
]


def test_sweep_report_and_rerun(tmp_path):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "FEDNTC_HOME": str(tmp_path / "home")}

    def sweep_once(timeout: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SWEEP, f"hydra.sweep.dir={sweep}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    done = sweep_once(800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "BD-rate of personalized vs" in done.stdout
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == 6
    report = sweep / "report"
    for name in ("results.csv", "classic.csv", "bd_rate.csv", "rd.png", "training.png"):
        assert (report / name).stat().st_size > 0, name
    rows = list(csv.DictReader((report / "results.csv").open()))
    assert len(rows) == 6 * 3 and all(math.isfinite(float(r["psnr"])) for r in rows)
    bd = [r for r in csv.DictReader((report / "bd_rate.csv").open()) if r["seed"] == "all"]
    assert {r["anchor"] for r in bd} == {"local", "fedavg"}
    # one round of 3 steps gives no real curves: each entry is a number or says why not
    for r in bd:
        assert math.isfinite(float(r["bd_rate_percent"])) == (r["status"] == "ok"), r
    classic = {r["method"] for r in csv.DictReader((report / "classic.csv").open())}
    assert classic == {"JPEG", "WebP"}

    # rerun: every run is finished, nothing is retrained
    stamps = [p.stat().st_mtime_ns for p in summaries]
    again = sweep_once(300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [p.stat().st_mtime_ns for p in summaries] == stamps
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()

    # the report regenerates from the CSVs without retraining
    regenerated = subprocess.run(
        ["fedntc-report", str(sweep), "--out", str(tmp_path / "r2")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert regenerated.returncode == 0, regenerated.stderr[-2000:]
    assert (tmp_path / "r2" / "rd.png").exists()

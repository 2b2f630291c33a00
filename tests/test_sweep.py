"""A miniature resumable sweep of both parts of the study through the real entry points:
Hydra multirun of `fedntc-simulate` (tiny models, 2 λ, 1 seed) on synthetic images (3
methods) and a miniature regime map on the vector source (personalized and local over 2
data sizes per client), then `fedntc-report`."""

import csv
import math
import os
import shutil
import subprocess

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

COMMON = [
    "fedntc-simulate",
    "-m",
    "data.num_clients=2",
    "data.batch_size=4",
    "num_rounds=1",
    "train.local_steps=3",
    "train.device=cpu",
]
PARTS = {
    "images": [
        "strategy=personalized,fedavg,local",
        "data.train_size=32",
        "train.lmbda=0.003,0.05",
        "model=tiny",
        "data=synthetic",
        "data.test_size=2",
        # defaults spelled out: job folder names past 255 bytes are cut and hashed
        "train.aux_lr=0.001",
        "train.clip_max_norm=1.0",
        "strategy.refit_steps=0",
        "strategy.keep_optimizer_state=true",
    ],
    "vectors": [
        "strategy=personalized,local",
        "data.train_size=16,32",  # the regime map's data axis, in miniature
        "train.lmbda=0.0003,0.003",
        "model=vector",
        "model.N=8",
        "data=vectors",
        "train=vector",
        "data.test_size=64",
    ],
}
# files of the report besides results.csv, bd_rate.csv, rd.png and training.png
EXTRA_FILES = {"images": "classic.csv", "vectors": "bound.csv"}
RUNS = {"images": 6, "vectors": 8}
# where a setting's plots go: the report itself, or one folder per data size (a map)
PLOT_DIRS = {"images": [""], "vectors": ["data.train_size=16", "data.train_size=32"]}


@pytest.mark.parametrize("part", PARTS)
def test_sweep_report_and_rerun(tmp_path, part):
    sweep = tmp_path / "sweep"
    env = {**os.environ, "FEDNTC_HOME": str(tmp_path / "home")}

    def sweep_once(timeout: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COMMON, *PARTS[part], f"hydra.sweep.dir={sweep}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    done = sweep_once(800)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "BD-rate of personalized vs" in done.stdout
    assert "[job 0] round 1/1 in " in done.stdout  # the ServerApp's progress, per job
    assert "rate and PSNR both rise with λ" in done.stdout
    if part == "images":  # the learned codecs beside JPEG/WebP at the same rate
        assert "JPEG PSNR" in done.stdout and "Reading: " in done.stdout
    summaries = sorted(sweep.glob("*/summary.json"))
    assert len(summaries) == RUNS[part]
    report = sweep / "report"
    for name in ("results.csv", "bd_rate.csv", "convergence.csv", EXTRA_FILES[part]):
        assert (report / name).stat().st_size > 0, name
    for folder in PLOT_DIRS[part]:
        for name in ("rd.png", "training.png"):
            assert (report / folder / name).stat().st_size > 0, (folder, name)
    assert not (report / EXTRA_FILES["images" if part == "vectors" else "vectors"]).exists()
    rows = list(csv.DictReader((report / "results.csv").open()))
    assert len(rows) == RUNS[part] * 3 and all(math.isfinite(float(r["psnr"])) for r in rows)
    bd = [r for r in csv.DictReader((report / "bd_rate.csv").open()) if r["seed"] == "all"]
    assert {r["anchor"] for r in bd} == {"local", "fedavg"}
    # one round of 3 steps gives no real curves: each entry is a number or says why not
    for r in bd:
        gave_value = r["status"] == "ok" or " seeds (" in r["status"]
        assert math.isfinite(float(r["bd_rate_percent"])) == gave_value, r
    if part == "images":
        classic = {r["method"] for r in csv.DictReader((report / "classic.csv").open())}
        assert classic == {"JPEG", "WebP"}
    else:
        bound = list(csv.DictReader((report / "bound.csv").open()))
        assert {r["client"] for r in bound} == {"0", "1"}
        assert all(float(r["rate"]) >= 0 for r in bound)
        # the regime map: one cell per data size, against the baseline that was run
        assert "Regime map" in done.stdout
        regime = list(csv.DictReader((report / "regime.csv").open()))
        assert {(r["train_size"], r["anchor"]) for r in regime} == {
            ("16", "local"),
            ("32", "local"),
        }
        assert (report / "regime.png").stat().st_size > 0

    # rerun: every run is finished, nothing is retrained
    stamps = [p.stat().st_mtime_ns for p in summaries]
    again = sweep_once(300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [p.stat().st_mtime_ns for p in summaries] == stamps
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()

    # the report regenerates from its own CSVs, without the run directories or retraining
    kept = tmp_path / "kept"
    shutil.move(report, kept)
    shutil.rmtree(sweep)
    regenerated = subprocess.run(
        ["fedntc-report", str(kept), "--out", str(tmp_path / "r2")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert regenerated.returncode == 0, regenerated.stderr[-2000:]
    assert "BD-rate of personalized vs" in regenerated.stdout
    for folder in PLOT_DIRS[part]:
        assert (tmp_path / "r2" / folder / "rd.png").stat().st_size > 0
    extra = ("regime.csv",) if part == "vectors" else ()
    for name in ("bd_rate.csv", "convergence.csv", EXTRA_FILES[part], *extra):
        assert (tmp_path / "r2" / name).read_text() == (kept / name).read_text(), name

"""End-to-end: a real Ray simulation through `flwr run` (2 rounds, 3 clients, tiny model)."""

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from flwr.app import ArrayRecord
from hydra import compose, initialize_config_dir

from common.coding import Codec, code_image
from common.config import ModelConfig
from common.data import load_client_data
from common.evaluate import evaluate_client
from common.model import create_model
from common.optimizer_state import split_moments
from common.run_folder import (
    RunFolder,
    load_shared_checkpoint,
    model_signature,
)
from common.split import KeySplit, fingerprint, merge_state
from launch.simulate import run_simulation, split_config
from launch.superlink import free_port

ROOT = Path(__file__).resolve().parent.parent
OVERRIDES = [
    "model=tiny",
    "data=synthetic",
    "data.num_clients=3",
    "data.train_size=32",
    "data.test_size=2",
    "data.batch_size=4",
    "num_rounds=2",
    "train.local_steps=3",
    "train.device=cpu",
    "simulation.timeout_s=300",
]


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_personalized_simulation_end_to_end(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=OVERRIDES)
    summary = run_simulation(cfg, tmp_path / "run")
    conf, _ = split_config(cfg)
    run_dir = tmp_path / "run"

    # metrics were recorded for every client and round, and the summary is finite
    train_rows = list(csv.DictReader((run_dir / "train.csv").open()))
    eval_rows = list(csv.DictReader((run_dir / "evaluate.csv").open()))
    assert len(train_rows) == 6 and len(eval_rows) == 6
    assert sorted(summary["clients"]) == ["0", "1", "2"] and summary["failures"] == []
    round_rows = list(csv.DictReader((run_dir / "rounds.csv").open()))
    assert [(r["phase"], r["round"], r["clients"]) for r in round_rows] == [
        (phase, str(k), "3") for k in (1, 2) for phase in ("train", "evaluate")
    ]
    assert all(math.isfinite(v) for v in summary["mean"].values())
    assert json.loads((run_dir / "config.json").read_text())["strategy.method"] == "personalized"

    # after the last round every client evaluated the same shared weights: the checkpoint
    shared, _ = load_shared_checkpoint(run_dir / "checkpoints" / "round-0002.pt")
    final = [r for r in eval_rows if r["round"] == "2"]
    assert {int(float(r["shared-hash"])) for r in final} == {fingerprint(shared)}

    # personal state files exist, hold only personal keys, differ between clients and are
    # what clients evaluated with (checked here, on the client side: nothing about the
    # personal part goes on the wire)
    model = create_model(ModelConfig(name="bmshj2018-factorized", N=8, M=12), seed=conf.seed)
    split = KeySplit.from_keys(model.state_dict(), ["g_a", "g_s"])
    personal_hashes = set()
    for client_id in range(3):
        saved = torch.load(RunFolder(run_dir).client_state_file(conf, client_id), weights_only=True)
        assert saved["model"] == model_signature(conf.model) and saved["round"] == 2
        state, moments = split_moments(saved["state"])
        assert set(state) == split.personal
        assert {k.split("/")[2] for k in moments} <= split.personal and moments  # kept Adam
        row = next(r for r in final if int(float(r["client-id"])) == client_id)
        assert not any("personal" in key for key in row)
        personal_hashes.add(fingerprint(split.trainable_personal_state(state)))
        mine = create_model(conf.model, seed=conf.seed)
        mine.load_state_dict(merge_state(mine.state_dict(), state, shared))
        test = load_client_data(conf.data, client_id, conf.seed).test
        again = evaluate_client(mine, test, "images")
        assert again["real_bpp"] == pytest.approx(float(row["real_bpp"]), rel=1e-9)
    assert len(personal_hashes) == 3

    # a real bitstream from client 0's model decodes to the model's reconstruction
    saved = torch.load(RunFolder(run_dir).client_state_file(conf, 0), weights_only=True)
    state = split_moments(saved["state"])[0]
    model.load_state_dict(merge_state(model.state_dict(), state, shared))
    model.eval().update(force=True)
    image = load_client_data(conf.data, 0, conf.seed).test[0]
    coded = code_image(Codec.from_model(model), image)
    with torch.no_grad():
        forward = model(image.float().div(255).unsqueeze(0))["x_hat"].clamp(0, 1)
    assert torch.allclose(coded.x_hat, forward, atol=0.5 / 255 + 1e-4)  # 8-bit decoded file
    assert coded.result.real_bpp > 0
    raw = sum(v.numel() * v.element_size() for v in shared.values())
    assert summary["bytes_per_client_per_round"]["up"] == ArrayRecord(shared).count_bytes() > raw

    # resume: the same run directory continues after its last checkpoint (round 2) to round 3
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        again = compose(
            "config",
            overrides=[
                *OVERRIDES,
                "num_rounds=3",
                "train.lr_decay_rounds=1",  # a new schedule that leaves rounds 1-2 as they were
                "resume=true",
                f"output_dir={run_dir}",
            ],
        )
    resumed = run_simulation(again, run_dir)
    assert resumed["rounds"] == 3
    rounds = [(r["phase"], r["round"]) for r in csv.DictReader((run_dir / "train.csv").open())]
    assert sorted({int(r) for _, r in rounds}) == [1, 2, 3] and len(rounds) == 9
    assert (run_dir / "checkpoints" / "round-0003.pt").exists()
    for client_id in range(3):
        saved = torch.load(RunFolder(run_dir).client_state_file(conf, client_id), weights_only=True)
        assert saved["round"] == 3
    # round 3 started from each client's round-2 personal state, reloaded from disk
    round3 = [r for r in csv.DictReader((run_dir / "train.csv").open()) if r["round"] == "3"]
    assert [int(float(r["state-round"])) for r in round3] == [2, 2, 2]
    assert {round(float(r["lr"]), 8) for r in round3} == {round(conf.train.lr * 0.1, 8)}
    assert not any(cwd.iterdir()), "nothing may be written to the working directory"


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("method", ["fedavg", "local"])
def test_baselines_run_end_to_end(tmp_path, method, monkeypatch):
    # a RAY_ADDRESS left in the shell (of a cluster long gone) must not capture a private run
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{free_port()}")
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                *OVERRIDES,
                f"strategy={method}",
                "num_rounds=3",
                "data.num_clients=2",
                "train.lr=0.002",
                "train.lr_decay_rounds=1",
                "strategy.evaluate_every=2",
            ],
        )
    summary = run_simulation(cfg, tmp_path / "run")
    assert summary["method"] == method and sorted(summary["clients"]) == ["0", "1"]
    # the last round trains at lr * 0.1; clients evaluate every 2nd round and after the last
    train_rows = list(csv.DictReader((tmp_path / "run" / "train.csv").open()))
    lr = sorted((r["round"], round(float(r["lr"]), 8)) for r in train_rows)
    assert lr == [("1", 0.002)] * 2 + [("2", 0.002)] * 2 + [("3", 0.0002)] * 2
    evaluated = [r["round"] for r in csv.DictReader((tmp_path / "run" / "evaluate.csv").open())]
    assert evaluated == ["2", "2", "3", "3"]
    phases = [
        (r["phase"], r["round"]) for r in csv.DictReader((tmp_path / "run" / "rounds.csv").open())
    ]
    assert ("evaluate", "1") not in phases and ("evaluate", "3") in phases
    up = summary["bytes_per_client_per_round"]["up"]
    model = create_model(ModelConfig(name="bmshj2018-factorized", N=8, M=12))
    if method == "local":
        assert up == 0
    else:  # everything but the integer coding tables
        split = KeySplit.from_keys(model.state_dict(), ["*"])
        assert up == ArrayRecord(split.shared_state(model.state_dict())).count_bytes()
        assert {k.split(".")[0] for k in split.shared} == {"g_a", "g_s", "entropy_bottleneck"}


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sampled_clients_skip_rounds_and_come_back_with_their_state(tmp_path):
    """fraction_train=0.5: half the clients train each round; a client that sat out
    continues from the state it saved the last time it trained."""
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(
            "config",
            overrides=[
                *OVERRIDES,
                "data.num_clients=4",
                "num_rounds=6",  # enough rounds that someone sits out and returns
                "strategy.fraction_train=0.5",
                "strategy.min_clients=1",
                "strategy.evaluate_every=6",
            ],
        )
    summary = run_simulation(cfg, tmp_path / "run")
    assert summary["rounds"] == 6 and summary["missing_clients"] == []
    train_rows = list(csv.DictReader((tmp_path / "run" / "train.csv").open()))
    trained = {}  # client -> rounds it trained in, from the run's own records
    for r in train_rows:
        trained.setdefault(int(float(r["client-id"])), []).append((int(r["round"]), r))
    per_round = [sum(1 for r in train_rows if r["round"] == str(k)) for k in range(1, 7)]
    assert per_round == [2] * 6
    came_back = 0
    for rounds in trained.values():
        previous = 0
        for server_round, row in sorted(rounds, key=lambda x: x[0]):
            assert int(float(row["state-round"])) == previous
            came_back += server_round - previous > 1 and previous > 0
            previous = server_round
    assert came_back, "a client skipped a round after training and trained again"

"""A real deployment on loopback: TLS SuperLink with SuperNode authentication, three
SuperNodes with their own data and state dirs, a restart, a failing client, and a refused
unregistered node. Slow: each message starts a ClientApp process that imports torch."""

import csv
import json

import pytest
import torch
from hydra import compose, initialize_config_dir

from launch.submit import submit
from tests.deployment import ROOT, Deployment, make_client_folder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_deployment_with_tls_auth_restart_and_faults(tmp_path):
    dep = Deployment(tmp_path)
    try:
        dep.start_superlink()
        nodes = {}
        for k in range(3):
            key = dep.make_key(f"client-{k}")
            dep.register(key)
            data_dir = tmp_path / "data" / f"client-{k}"
            if k < 2:  # client 2 points at a data dir that does not exist: it fails every round
                make_client_folder(data_dir, seed=k)
            config = (
                f"partition-id={k} num-partitions=3 data-dir='{data_dir}' "
                f"state-dir='{tmp_path / 'state' / f'node-{k}'}' device='cpu'"
            )
            nodes[k] = (key, config, dep.start_supernode(str(k), key, config))

        # an unregistered SuperNode is refused and exits on its own
        stranger = dep.start_supernode("stranger", dep.make_key("stranger"), "partition-id=0")
        assert stranger.wait(timeout=60) != 0
        assert "Failed to activate" in (tmp_path / "supernode-stranger.log").read_text()

        dep.wait_for(lambda: dep.online_nodes() == 3, 60, "three SuperNodes")
        overrides = dep.run_overrides(
            tmp_path / "run", clients=3, rounds=1, local_steps=2, min_clients=2, timeout=90
        )
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            first = compose("config", overrides=overrides)
            resumed = compose("config", overrides=[*overrides, "num_rounds=2", "resume=true"])
        log = tmp_path / "submit-1" / "flwr-run.log"
        assert submit(first, tmp_path / "submit-1") == (0, tmp_path / "run"), log.read_text()[
            -3000:
        ]

        # the run is over after round 1 (as if the server died); client 1's machine restarts
        key, config, proc = nodes[1]
        dep.stop(proc)
        dep.start_supernode("1-restarted", key, config)
        dep.wait_for(lambda: dep.online_nodes() == 3, 60, "restarted SuperNode")
        log = tmp_path / "submit-2" / "flwr-run.log"
        assert submit(resumed, tmp_path / "submit-2") == (0, tmp_path / "run"), log.read_text()[
            -3000:
        ]
    finally:
        dep.close()

    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert sorted(summary["clients"]) == ["0", "1"], "the failing client must be missing"
    failures = list(csv.DictReader((run / "failures.csv").open()))
    assert failures and all(
        "data" in f["reason"] or "does not exist" in f["reason"] for f in failures
    )
    assert {f["round"] for f in failures} == {"1", "2"}

    train_rows = list(csv.DictReader((run / "train.csv").open()))
    by_client_round = {(int(r["client-id"]), int(r["round"])): r for r in train_rows}
    assert set(by_client_round) == {(0, 1), (0, 2), (1, 1), (1, 2)}
    # after its restart, client 1 continued from the state it saved after round 1
    assert int(float(by_client_round[(1, 2)]["state-round"])) == 1
    for k in (0, 1):
        saved = torch.load(
            next((tmp_path / "state" / f"node-{k}" / f"client-{k}").glob("personal-*.pt")),
            weights_only=True,
        )
        assert saved["round"] == 2
    assert (run / "checkpoints" / "round-0002.pt").exists()

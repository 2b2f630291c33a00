"""Faults as they happen, on a real loopback deployment: a SuperNode SIGKILLed during local
training, then restarted. Slow: every message starts a ClientApp process."""

import csv
import threading
import time

import psutil
import pytest
from hydra import compose, initialize_config_dir

from common.config import ModelConfig
from common.run_folder import RunFolder, read_state_versions
from launch.submit import submit
from tests.deployment import ROOT, Deployment
from tests.test_deployment import make_client_folder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def rows(path):
    return list(csv.DictReader(path.open())) if path.exists() else []


def clientapps(proc):
    """The ClientApp processes a SuperNode has started (one per message)."""
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if "clientapp" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def test_supernode_killed_during_training_is_a_recorded_failure_and_recovers(tmp_path):
    dep = Deployment(tmp_path)
    dep.env["OMP_NUM_THREADS"] = "1"  # two SuperNodes share this host's cores
    run = tmp_path / "run"
    figures = {}
    try:
        dep.start_superlink()
        nodes = {}
        for k in range(2):
            key = dep.make_key(f"client-{k}")
            node_id = dep.register(key)
            make_client_folder(tmp_path / "data" / f"client-{k}", seed=k)
            config = (
                f"partition-id={k} num-partitions=2 data-dir='{tmp_path / 'data' / f'client-{k}'}' "
                f"state-dir='{tmp_path / 'state' / f'node-{k}'}' device='cpu' threads=1"
            )
            nodes[k] = {"id": node_id, "key": key, "config": config}
            nodes[k]["proc"] = dep.start_supernode(str(k), key, config)
        dep.wait_for(lambda: dep.online_nodes() == 2, 60, "two SuperNodes")
        overrides = [
            "model=tiny",
            "data=folder",
            "data.root=/unused",
            "data.num_clients=2",
            "data.crop_size=32",
            "data.batch_size=4",
            "num_rounds=3",
            "train.local_steps=1000",  # long enough to be killed in the middle of it
            "strategy.min_clients=2",
            "strategy.round_timeout=45",
            f"deployment.address={dep.address}",
            f"deployment.root_certificates={dep.certs / 'ca.crt'}",
            f"output_dir={run}",
        ]
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        result = {}
        thread = threading.Thread(
            target=lambda: result.update(out=submit(cfg, tmp_path / "submit")), daemon=True
        )
        thread.start()

        # round 1 ends; in round 2, kill node 1 while its ClientApp trains
        dep.wait_for(
            lambda: any(r["phase"] == "evaluate" for r in rows(run / "rounds.csv")), 240, "round 1"
        )
        round_2 = time.time()
        victim = nodes[1]["proc"]

        def training_for_a_while():
            apps = [p for p in clientapps(victim) if p.create_time() > round_2]
            return any(time.time() - p.create_time() > 9 for p in apps)  # imported, training

        dep.wait_for(training_for_a_while, 120, "node 1's round-2 ClientApp")
        for proc in [*clientapps(victim), psutil.Process(victim.pid)]:
            proc.kill()  # SIGKILL, by PID: the processes this test started
        victim.wait(timeout=30)
        killed = time.time()
        assert not any(r["phase"] == "train" and r["round"] == "2" for r in rows(run / "train.csv"))
        # the SuperLink takes the node for gone after two missed heartbeats; then it restarts
        dep.wait_for(lambda: dep.online_nodes() == 1, 120, "the SuperLink to notice")
        nodes[1]["proc"] = dep.start_supernode("1-restarted", nodes[1]["key"], nodes[1]["config"])
        thread.join(timeout=420)
        assert not thread.is_alive(), "the run did not finish"
        log = tmp_path / "submit" / "flwr-run.log"
        assert result["out"] == (0, run), log.read_text()[-3000:]
        figures["run_seconds_after_kill"] = round(time.time() - killed, 1)
    finally:
        dep.close()

    # the killed node's round is a failure with its real node id and the reason
    failures = rows(run / "failures.csv")
    train_2 = [f for f in failures if f["phase"] == "train" and f["round"] == "2"]
    assert [int(f["node_id"]) for f in train_2] == [nodes[1]["id"]], failures
    figures["reason"] = train_2[0]["reason"]  # no reply within 45 s, or the SuperLink's error
    assert train_2[0]["reason"]
    round_rows = {(r["phase"], r["round"]): r for r in rows(run / "rounds.csv")}
    assert round_rows[("train", "2")]["clients"] == "1"
    assert round_rows[("train", "2")]["below_min_clients"] == "True"
    assert round_rows[("train", "3")]["clients"] == "2"

    # the restarted node continued from its last consistent state (round 1), intact on disk
    trained = {(int(float(r["client-id"])), int(r["round"])): r for r in rows(run / "train.csv")}
    assert (1, 2) not in trained and (1, 1) in trained and (1, 3) in trained
    assert int(float(trained[(1, 3)]["state-round"])) == 1
    folder = RunFolder(run)
    conf_model = ModelConfig(name="bmshj2018-factorized", N=8, M=12)
    for k in (0, 1):
        state_file = tmp_path / "state" / f"node-{k}" / f"client-{k}"
        state_file = state_file / f"personal-{folder.read_run_uid()}.pt"
        uid, versions = read_state_versions(state_file, conf_model)
        assert uid == folder.read_run_uid() and versions[0][0] == 3
    print(f"\nfault figures: {figures}")

"""Faults as they happen: a SuperNode SIGKILLed during local training (a real loopback
deployment), and a whole simulation SIGKILLed mid-round, each then recovered; a launcher
stopped by SIGTERM, which must leave no process behind."""

import contextlib
import csv
import os
import subprocess
import threading
import time

import psutil
import pytest
import torch
from hydra import compose, initialize_config_dir

from common.config import ModelConfig
from common.run_folder import RunFolder, read_state_versions
from launch.submit import submit
from tests.deployment import ROOT, Deployment, make_client_folder

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
        # 1,000 local steps (about 22 s of training a round here, after about 6 s of imports):
        # long enough to be killed amid them on a faster machine too
        overrides = dep.run_overrides(
            run, clients=2, rounds=3, local_steps=1000, min_clients=2, timeout=120
        )
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
            return any(time.time() - p.create_time() > 12 for p in apps)  # imported, training

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
    figures["reason"] = train_2[0]["reason"]  # no reply within 120 s, or the SuperLink's error
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


def test_server_killed_mid_round_resumes_with_consistent_shared_and_personal_state(tmp_path):
    """The whole simulation (SuperLink, ServerApp, Ray) is SIGKILLed in round 3 after a client
    saved its round-3 state but before the round-3 checkpoint; the resumed run redoes round 3
    from the round-2 checkpoint, and every client from its round-2 state."""
    run = tmp_path / "run"
    env = {**os.environ, "FEDNTC_HOME": str(tmp_path / "home")}
    command = [
        "fedntc-simulate", "model=tiny", "data=synthetic", "data.num_clients=3",
        "data.train_size=32", "data.test_size=2", "data.batch_size=4", "num_rounds=3",
        "train.local_steps=400", "train.device=cpu", "strategy.evaluate_every=3",
        f"output_dir={run}",
    ]  # fmt: skip
    sim = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    states = run / "client-state"

    def a_round_3_state_before_its_checkpoint():
        if (run / "checkpoints" / "round-0003.pt").exists():
            pytest.fail("round 3 ended before the kill: make local training longer")
        for path in states.glob("client-*/personal-*.pt"):
            try:
                if torch.load(path, weights_only=True)["round"] == 3:
                    return True
            except (OSError, RuntimeError, EOFError):
                pass  # being replaced
        return False

    try:
        Deployment.wait_for(a_round_3_state_before_its_checkpoint, 300, "a round-3 state")
        tree = psutil.Process(sim.pid).children(recursive=True)
        for proc in [psutil.Process(sim.pid), *tree]:  # the processes this test started
            with contextlib.suppress(psutil.Error):
                proc.kill()
        sim.wait(timeout=30)
        psutil.wait_procs(tree, timeout=30)
    finally:
        if sim.poll() is None:
            sim.kill()
    assert not (run / "checkpoints" / "round-0003.pt").exists()
    started = time.monotonic()
    resumed = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=400
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    round_3 = [r for r in rows(run / "train.csv") if r["round"] == "3"]
    assert len(round_3) == 3
    assert [int(float(r["state-round"])) for r in round_3] == [2, 2, 2]
    for path in states.glob("client-*/personal-*.pt"):
        saved = torch.load(path, weights_only=True)
        assert (saved["round"], saved["previous"]["round"]) == (3, 2)
    print(f"\nresumed run took {time.monotonic() - started:.0f} s")


def test_a_launcher_stopped_by_sigterm_ends_every_process_it_started(tmp_path):
    """``kill`` (SIGTERM) of ``fedntc-simulate`` mid-run, as a job scheduler does, stops the
    SuperLink, the simulation and its Ray processes too: nothing keeps running or holds the
    cores."""
    run = tmp_path / "run"
    command = [
        "fedntc-simulate", "model=vector", "data=vectors", "train=vector", "num_rounds=200",
        "data.num_clients=2", f"output_dir={run}",
    ]  # fmt: skip
    env = {**os.environ, "FEDNTC_HOME": str(tmp_path / "home")}
    sim = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    tree: list[psutil.Process] = []
    try:
        Deployment.wait_for(lambda: rows(run / "train.csv"), 300, "a first trained round")
        tree = psutil.Process(sim.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in tree)
        assert "flower-superlink" in names and "ray" in names  # the tree is all there
        sim.terminate()
        assert sim.wait(timeout=60) != 0
        _, alive = psutil.wait_procs(tree, timeout=60)
        assert not alive, [" ".join(p.cmdline())[:80] for p in alive]
    finally:
        for proc in [psutil.Process(sim.pid), *tree] if sim.poll() is None else tree:
            with contextlib.suppress(psutil.Error):
                proc.kill()

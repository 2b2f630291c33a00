"""A simulation on a 2-node Ray cluster on loopback, started with `ray start` (each node with
one CPU) and stopped by PID: clients run on both nodes, as the run's own records show."""

import contextlib
import csv
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import psutil
import pytest

from launch.superlink import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(500)]
ROOT = Path(__file__).resolve().parent.parent


def ray_processes(temp_dir: str) -> set[psutil.Process]:
    """The processes of the cluster under ``temp_dir`` (its daemons name their session dir
    there) and everything they started."""
    found: set[psutil.Process] = set()
    for proc in psutil.process_iter(["cmdline"]):
        if any(temp_dir in part for part in proc.info["cmdline"] or []):
            found.add(proc)
    for proc in list(found):
        with contextlib.suppress(psutil.Error):
            found.update(proc.children(recursive=True))
    return found


def stop(processes: set[psutil.Process]) -> None:
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(list(processes), timeout=15)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def test_simulation_runs_clients_on_both_nodes_of_a_ray_cluster(tmp_path):
    temp_dir = tempfile.mkdtemp(prefix="fedntc-ray-", dir="/tmp")  # short: socket paths
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "FEDNTC_HOME": str(tmp_path / "home")}
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    try:
        subprocess.run(
            ["ray", "start", "--head", f"--port={port}", "--include-dashboard=false",
             f"--temp-dir={temp_dir}", *common],
            env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        subprocess.run(
            ["ray", "start", f"--address={address}", *common],
            env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        done = subprocess.run(
            ["fedntc-simulate", "model=vector", "data=vectors", "train=vector",
             "data.num_clients=2", "num_rounds=1", "train.local_steps=5",
             "simulation.num_cpus_per_client=1", f"simulation.ray_address={address}",
             f"output_dir={tmp_path / 'run'}"],
            env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    finally:
        stop(ray_processes(temp_dir))
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not ray_processes(temp_dir)
    rows = list(csv.DictReader((tmp_path / "run" / "train.csv").open()))
    nodes = {int(float(r["client-id"])): int(float(r["ray-node"])) for r in rows}
    assert sorted(nodes) == [0, 1]
    assert len(set(nodes.values())) == 2 and 0 not in nodes.values(), nodes

"""Launch-side config handling: deployed runs' paths, the Flower CLI config file, the app
folder given to ``flwr run``, and Ray's limits."""

import io
import socket
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
from flwr.cli.build import build_fab_from_disk
from hydra import compose, initialize_config_dir

from common.config import ConfigError
from launch.app_bundle import stage
from launch.ray_cluster import resolve_ray_address
from launch.simulate import federation_options, split_all, split_config
from launch.submit import CONNECTION, write_connection
from launch.superlink import free_port
from tests.deployment import ROOT


def composed(overrides):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def test_a_deployed_run_refuses_relative_paths_but_a_simulation_resolves_them(tmp_path):
    cfg = composed(["output_dir=runs/exp1", "model=base"])
    with pytest.raises(ConfigError, match="'output_dir' is the relative path 'runs/exp1'"):
        split_all(cfg, remote=True)
    local, _, _ = split_all(cfg)
    assert local.output_dir.endswith("/runs/exp1") and local.output_dir.startswith("/")
    assert local.model.init == "base"  # runs at several λ stay one setting
    assert (Path(local.model.base_dir) / "bmshj2018-factorized-N64-M96-l0.0067.pt").exists()
    remote, _, _ = split_all(composed(["output_dir=/srv/runs/exp1", "model=base"]), remote=True)
    assert remote.output_dir == "/srv/runs/exp1" and remote.model.init == "base"
    assert remote.model.base_dir == ""  # each machine finds its own shipped models


def test_connection_file_is_valid_toml_for_any_path(tmp_path):
    ca = tmp_path / 'odd "dir" \\ name' / "ca.crt"
    ca.parent.mkdir()
    ca.write_text("cert")
    write_connection(tmp_path / "home", "example.org:9093", str(ca), insecure=False)
    config = tomllib.loads((tmp_path / "home" / "config.toml").read_text())
    assert config["superlink"]["default"] == CONNECTION
    entry = config["superlink"][CONNECTION]
    assert entry == {"address": "example.org:9093", "root-certificates": str(ca.resolve())}


def test_ray_address_private_by_default_and_a_dead_cluster_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")  # a leftover from an old cluster
    assert resolve_ray_address("") == "local"  # a private Ray: the leftover is not used
    dead = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"no Ray cluster answers at {dead}"):
        resolve_ray_address(dead)
    assert time.monotonic() - started < 10
    monkeypatch.delenv("RAY_ADDRESS")
    with pytest.raises(ConfigError, match="no Ray cluster found"):
        resolve_ray_address("auto")
    with socket.socket() as listening:  # something that answers, named by Ray's address file
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        address = f"127.0.0.1:{listening.getsockname()[1]}"
        (tmp_path / "ray").mkdir()
        (tmp_path / "ray" / "ray_current_cluster").write_text(address + "\n")
        assert resolve_ray_address("auto") == address
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        resolve_ray_address("somewhere")


def test_the_staged_app_holds_only_the_packages_and_builds_the_same_app(tmp_path):
    staged = stage(ROOT, tmp_path / "app")
    top = {p.name for p in staged.iterdir()}
    assert {"pyproject.toml", "common", "client", "server"} <= top
    assert not top & {".venv", ".git", "tests", "docs", "models", "benchmarks"}
    assert not list(staged.rglob("__pycache__"))
    fab = zipfile.ZipFile(io.BytesIO(build_fab_from_disk(staged)))
    names = set(fab.namelist())
    assert {"server/server_app.py", "client/client_app.py", "common/model.py"} <= names
    staged_config = tomllib.loads(fab.read("pyproject.toml").decode())
    own = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert staged_config["tool"]["flwr"]["app"] == own["tool"]["flwr"]["app"]


def test_a_package_named_in_pyproject_but_missing_is_named(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools.packages.find]\ninclude = ["common*", "gone*"]\n'
    )
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "__init__.py").write_text("")
    with pytest.raises(FileNotFoundError, match=r"\['gone'\]"):
        stage(tmp_path, tmp_path / "out")


def test_ray_limits_go_only_to_a_ray_the_run_starts():
    conf, sim = split_config(composed(["simulation.ray_num_cpus=2", "data.num_clients=3"]))
    private = federation_options(conf, sim, "local")
    assert "num-supernodes=3" in private and "init-args-num-cpus=2" in private
    assert "init-args" not in federation_options(conf, sim, "127.0.0.1:6379")


def test_sigterm_while_the_superlink_starts_stops_it(tmp_path):
    """A launcher killed while it waits for its SuperLink to become healthy (``with`` not
    yet entered, so ``__exit__`` never runs) still stops the SuperLink it started."""
    import os
    import signal
    import threading

    from launch.superlink import LocalSimulationLink, exit_on_sigterm

    previous = signal.getsignal(signal.SIGTERM)
    exit_on_sigterm()
    link = LocalSimulationLink(tmp_path / "home")
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        with pytest.raises(SystemExit), link:
            pytest.fail("the SuperLink became healthy before SIGTERM; nothing was tested")
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
        if link.process is not None and link.process.poll() is None:
            link.process.kill()
            pytest.fail("the SuperLink outlived its launcher's SIGTERM")
    assert link.process is not None and link.process.wait(timeout=30) is not None

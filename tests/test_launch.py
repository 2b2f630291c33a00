"""Launch-side config handling: deployed runs' paths, and the Flower CLI config file."""

import tomllib

import pytest
from hydra import compose, initialize_config_dir

from common.config import ConfigError
from launch.simulate import split_all
from launch.submit import CONNECTION, write_connection
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
    assert local.model.init.endswith(".pt")  # the shipped file, found on this machine
    remote, _, _ = split_all(composed(["output_dir=/srv/runs/exp1", "model=base"]), remote=True)
    assert remote.output_dir == "/srv/runs/exp1" and remote.model.init == "base"


def test_connection_file_is_valid_toml_for_any_path(tmp_path):
    ca = tmp_path / 'odd "dir" \\ name' / "ca.crt"
    ca.parent.mkdir()
    ca.write_text("cert")
    write_connection(tmp_path / "home", "example.org:9093", str(ca), insecure=False)
    config = tomllib.loads((tmp_path / "home" / "config.toml").read_text())
    assert config["superlink"]["default"] == CONNECTION
    entry = config["superlink"][CONNECTION]
    assert entry == {"address": "example.org:9093", "root-certificates": str(ca.resolve())}

import tomllib
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from common.config import (
    SHARED_PREFIXES,
    ConfigError,
    RunConfig,
    flatten,
    from_run_config,
)
from launch.simulate import split_config

ROOT = Path(__file__).resolve().parent.parent


def composed(overrides=()):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_flatten_round_trip():
    conf = RunConfig()
    flat = flatten(conf)
    assert flat["strategy.shared_prefixes"] == "g_a,g_s"
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())
    assert from_run_config(flat) == conf


def test_defaults_agree_in_pyproject_hydra_and_dataclasses():
    """`flwr run .`, `fedntc-simulate` and RunConfig() must train the same thing."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    conf, _ = split_config(composed())
    assert pyproject["tool"]["flwr"]["app"]["config"] == flatten(conf) == flatten(RunConfig())


def test_unknown_key_is_named():
    flat = flatten(RunConfig())
    flat["train.lmbdaa"] = 0.1
    with pytest.raises(ConfigError, match="train.lmbdaa"):
        from_run_config(flat)


def test_ill_typed_value_is_named():
    flat = flatten(RunConfig())
    flat["train.local_steps"] = "many"
    with pytest.raises(ConfigError, match="train.local_steps"):
        from_run_config(flat)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("strategy.method", "fedprox", "strategy.method"),
        ("data.source", "web", "data.source"),
        ("train.lmbda", -1.0, "train.lmbda"),
        ("num_rounds", 0, "num_rounds"),
        ("train.lr_decay_rounds", 7, "train.lr_decay_rounds"),  # more than num_rounds=6
        ("train.lr_decay", 0.0, "train.lr_decay"),
        ("strategy.evaluate_every", 0, "strategy.evaluate_every"),
        ("strategy.server_tau", 0.0, "strategy.server_tau"),
    ],
)
def test_bad_values_fail_before_training(key, value, match):
    flat = flatten(RunConfig())
    flat[key] = value
    with pytest.raises(ConfigError, match=match):
        from_run_config(flat)


def test_hydra_groups_select_methods():
    conf, sim = split_config(composed(["strategy=fedavg", "model=hyperprior", "data=synthetic"]))
    assert conf.strategy.method == "fedavg" and conf.strategy.shared_prefixes == ["*"]
    assert conf.model.name == "bmshj2018-hyperprior"
    assert conf.strategy.min_clients == conf.data.num_clients
    assert sim.num_cpus_per_client == 1
    local, _ = split_config(composed(["strategy=local"]))
    assert local.strategy.shared_prefixes == []


def test_hydra_rejects_unknown_override():
    with pytest.raises(Exception, match="lmbdaa"):
        composed(["train.lmbdaa=0.1"])


@pytest.mark.parametrize("script", ["fedntc-simulate", "fedntc-submit"])
def test_console_scripts_find_the_config_from_any_directory(tmp_path, script):
    import subprocess

    done = subprocess.run(
        [script, "--cfg", "job", "strategy=fedavg"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "method: fedavg" in done.stdout
    assert not any(tmp_path.iterdir()), "nothing may be written to the working directory"


def test_previous_run_is_skipped_resumed_or_refused(tmp_path):
    import json

    from server.resume import previous_run

    conf, _ = split_config(composed(["num_rounds=3"]))
    run = tmp_path / "run"
    assert previous_run(conf, run) == "new"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({**flatten(conf), "resume": True}))
    assert previous_run(conf, run) == "new"  # started, but no round finished
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "round-0001.pt").write_bytes(b"")
    assert previous_run(conf, run) == "interrupted"
    (run / "summary.json").write_text(json.dumps({"rounds": 3}))
    assert previous_run(conf, run) == "finished"
    longer, _ = split_config(composed(["num_rounds=5"]))
    assert previous_run(longer, run) == "interrupted"  # extend a finished run
    other, _ = split_config(composed(["num_rounds=3", "train.lmbda=0.1"]))
    with pytest.raises(ValueError, match="train.lmbda"):
        previous_run(other, run)
    # a run saved before a config key existed resumes while that key keeps its default
    older = {k: v for k, v in flatten(conf).items() if k != "train.lr_decay_rounds"}
    (run / "config.json").write_text(json.dumps(older))
    assert previous_run(conf, run) == "finished"
    # the schedule may change where the rounds done keep their lr: extend, then decay
    (run / "config.json").write_text(json.dumps(flatten(conf)))
    decayed, _ = split_config(composed(["num_rounds=5", "train.lr_decay_rounds=2"]))
    assert previous_run(decayed, run) == "interrupted"
    (run / "checkpoints" / "round-0003.pt").write_bytes(b"")
    late, _ = split_config(composed(["num_rounds=3", "train.lr_decay_rounds=1"]))
    with pytest.raises(ValueError, match="trained round 3 at lr 0.001"):
        previous_run(late, run)


def test_server_app_refuses_to_resume_a_run_of_another_config(tmp_path):
    """A deployed run (resume=true, no fedntc-simulate in front) is checked by the ServerApp
    itself, before it rewrites the run's config.json or touches the grid."""
    import json

    from flwr.app import Context, RecordDict

    from server.server_app import main

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "round-0001.pt").write_bytes(b"")
    saved, _ = split_config(composed(["num_rounds=3", f"output_dir={run}"]))
    (run / "config.json").write_text(json.dumps(flatten(saved)))
    other, _ = split_config(
        composed(["num_rounds=3", "train.lmbda=0.1", "resume=true", f"output_dir={run}"])
    )
    context = Context(
        run_id=7, node_id=0, node_config={}, state=RecordDict(), run_config=flatten(other)
    )
    with pytest.raises(ValueError, match="train.lmbda"):
        main(None, context)  # the grid is never reached
    assert json.loads((run / "config.json").read_text()) == flatten(saved)


def test_folder_source_without_root_fails_in_preflight():
    from common.preflight import preflight

    conf, _ = split_config(composed(["data=folder"]))
    with pytest.raises(ValueError, match="data.root"):
        preflight(conf)
    hf, _ = split_config(composed(["data=hf"]))
    with pytest.raises(ValueError, match="data.hf_dataset"):
        preflight(hf)


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    conf, _ = split_config(composed(["data=folder", "data.root=imgs", "output_dir=out"]))
    assert conf.data.root == str(tmp_path / "imgs") and conf.output_dir == str(tmp_path / "out")


@pytest.mark.parametrize("method", sorted(SHARED_PREFIXES))
def test_each_strategy_group_selects_the_methods_shared_prefixes(method):
    conf, _ = split_config(composed([f"strategy={method}"]))
    assert conf.strategy.method == method
    assert conf.strategy.shared_prefixes == list(SHARED_PREFIXES[method])

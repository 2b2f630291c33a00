"""Hydra entry: compose and validate the config, then run a Ray simulation via ``flwr run``.

    python -m launch.simulate strategy=local train.lmbda=0.0067
    python -m launch.simulate -m strategy=personalized,fedavg,local   # compare methods

The real entry, :func:`run_simulation`, takes a composed config so tests call it with
``hydra.compose``. The config is flattened into a Flower run-config file and submitted with
``flwr run`` to a SuperLink (simulation runtime) that this process starts and stops.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import hydra
import tomli_w
import torch
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from common.config import ConfigError, RunConfig, flatten, from_mapping
from common.init import base_path, models_dir
from common.preflight import preflight
from launch.app_bundle import APP_DIR, staged_app
from launch.job_dirname import register_resolver
from launch.ray_cluster import resolve_ray_address
from launch.superlink import (
    CONNECTION,
    LocalSimulationLink,
    exit_on_sigterm,
    flower_executable,
)
from server.progress import MARKER
from server.results import format_summary
from server.resume import previous_run

log = logging.getLogger(__name__)
CONF_DIR = APP_DIR / "conf"


@dataclass
class SimulationSettings:
    """Ray resources of the Flower simulation engine."""

    num_cpus_per_client: int = 1
    num_gpus_per_client: float = 0.0
    ray_num_cpus: int = 0
    timeout_s: int = 3600
    ray_address: str = ""  # empty: a private Ray; auto or HOST:PORT: join that cluster


@dataclass
class DeploymentSettings:
    """Where ``launch.submit`` sends the run: a SuperLink's address and its CA certificate."""

    address: str = "127.0.0.1:9093"
    root_certificates: str = ""
    insecure: bool = False
    timeout_s: int = 86400


@dataclass
class SimulateConfig(RunConfig):
    """Schema of the Hydra tree: the run config plus simulation / deployment settings."""

    simulation: SimulationSettings = field(default_factory=SimulationSettings)
    deployment: DeploymentSettings = field(default_factory=DeploymentSettings)


ConfigStore.instance().store(name="fedntc_schema", node=SimulateConfig)
register_resolver()


def split_config(cfg: DictConfig) -> tuple[RunConfig, SimulationSettings]:
    """Validate a composed Hydra config into the run config and simulation settings."""
    conf, simulation, _ = split_all(cfg)
    return conf, simulation


def split_all(
    cfg: DictConfig, remote: bool = False
) -> tuple[RunConfig, SimulationSettings, DeploymentSettings]:
    """The run config and the simulation and deployment settings of a composed config.

    Paths are resolved here for a local simulation; for a deployment (``remote``) they are
    used on other machines, so they must be absolute already (:func:`remote_paths`)."""
    try:
        values: dict[str, Any] = OmegaConf.to_container(  # type: ignore[assignment]
            cfg, resolve=True, throw_on_missing=True
        )
    except MissingMandatoryValue as err:
        raise ConfigError(f"config key '{err.full_key}' must be set (it is ???)") from err
    values.pop("hydra", None)
    simulation = SimulationSettings(**values.pop("simulation", {}))
    deployment = DeploymentSettings(**values.pop("deployment", {}))
    conf = from_mapping(values)
    return (remote_paths(conf) if remote else absolute_paths(conf)), simulation, deployment


PATH_KEYS = (
    "output_dir",
    "state_dir",
    "data.root",
    "data.hf_data_dir",
    "model.init",
    "model.base_dir",
)


def remote_paths(conf: RunConfig) -> RunConfig:
    """Refuse relative paths in a deployed run's config: the ServerApp and the SuperNodes
    use them on their own machines, where this machine's working directory means nothing.
    ``model.init=base`` stays ``base``: each machine finds its own shipped weights."""
    flat = flatten(conf)
    for key in PATH_KEYS:
        value = str(flat[key])
        if key == "model.init" and value in ("scratch", "zoo", "base"):
            continue
        if value and not Path(value).expanduser().is_absolute():
            raise ConfigError(
                f"config key '{key}' is the relative path {value!r}; a deployed run uses it "
                "on the SuperLink's or the SuperNodes' machines: give an absolute path there"
            )
    return conf


def absolute_paths(conf: RunConfig) -> RunConfig:
    """Resolve relative paths against this directory, and ``model.base_dir`` (for
    ``model.init=base``) to this checkout's shipped models: the ServerApp and ClientApps run
    in other processes with other working directories, from an app bundle that holds no
    weights. ``model.init=base`` itself stays, so runs at several λ form one setting."""

    def resolve(path: str) -> str:
        return str(Path(path).expanduser().resolve()) if path else path

    conf.output_dir = resolve(conf.output_dir)
    conf.state_dir = resolve(conf.state_dir)
    conf.data.root = resolve(conf.data.root)
    conf.data.hf_data_dir = resolve(conf.data.hf_data_dir)
    # Flower's app bundle carries no weight files: name their folder by its full path.
    if conf.model.init == "base":
        conf.model.base_dir = resolve(conf.model.base_dir) or str(models_dir(conf.model))
        log.info("model.init=base: %s", base_path(conf.model, conf.train.lmbda))
    elif conf.model.init not in ("scratch", "zoo"):
        conf.model.init = resolve(conf.model.init)
    return conf


def federation_options(conf: RunConfig, sim: SimulationSettings, ray_address: str) -> str:
    """``flwr run --federation-config`` value: one virtual SuperNode per client. Ray's own
    limits go to a Ray the run starts; a Ray it joins was sized when it started."""
    options = {
        "num-supernodes": conf.data.num_clients,
        "client-resources-num-cpus": sim.num_cpus_per_client,
        "client-resources-num-gpus": sim.num_gpus_per_client,
    }
    if sim.ray_num_cpus > 0 and ray_address == "local":
        options["init-args-num-cpus"] = sim.ray_num_cpus
    return " ".join(f"{k}={v}" for k, v in options.items())


def run_simulation(cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """Run one federated simulation and return its ``summary.json`` content.

    A run directory that already holds this config is not retrained: a finished run is
    returned as is, an interrupted one resumes after its last checkpoint. So a multirun
    into a fixed sweep directory can be stopped and restarted at any point.
    """
    conf, sim = split_config(cfg)
    if not conf.output_dir:
        conf.output_dir = str(output_dir)
    run_dir = Path(conf.output_dir)
    state = previous_run(conf, run_dir)
    if state == "finished":
        log.info("%s already finished; not retrained", run_dir)
        return json.loads((run_dir / "summary.json").read_text())
    if state == "interrupted":
        log.info("%s holds fewer rounds; resuming after its last checkpoint", run_dir)
        conf.resume = True
    preflight(conf)
    if sim.num_gpus_per_client == 0 and conf.train.device != "cpu" and torch.cuda.is_available():
        log.warning(
            "this machine has a GPU, but simulation.num_gpus_per_client=0 hides it from "
            "the virtual clients (Ray); set it to e.g. 0.25 to train on the GPU"
        )
    ray_address = resolve_ray_address(sim.ray_address)
    with LocalSimulationLink(run_dir / ".flwr", extra_env={"RAY_ADDRESS": ray_address}) as link:
        options = federation_options(conf, sim, ray_address)
        code = submit_run(conf, run_dir, link.env, CONNECTION, options, sim.timeout_s)
    return read_summary(run_dir, code)


def submit_run(
    conf: RunConfig,
    run_dir: Path,
    env: dict[str, str],
    connection: str,
    federation_config: str | None,
    timeout_s: float,
) -> int:
    """``flwr run`` this app with ``conf`` as run-config; keep the run-config file and the
    streamed log (``flwr-run.log``) in ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    run_config_file = run_dir / "run_config.toml"
    run_config_file.write_text(tomli_w.dumps(flatten(conf)))
    command = [flower_executable("flwr"), "run", str(staged_app()), connection]
    command += ["--run-config", str(run_config_file)]
    if federation_config:
        command += ["--federation-config", federation_config]
    log_path = run_dir / "flwr-run.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [*command, "--stream"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        copier = threading.Thread(target=copy_stream, args=(process.stdout, log_file), daemon=True)
        copier.start()
        try:
            code = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as err:
            process.kill()
            process.wait()
            raise TimeoutError(f"flwr run did not finish in {timeout_s}s; see {log_path}") from err
        except BaseException:  # Ctrl-C or SIGTERM (exit_on_sigterm): end what we started
            process.kill()
            process.wait()
            raise
        finally:
            copier.join(timeout=10)
    return code


def copy_stream(stream: IO[str], log_file: IO[str]) -> None:
    """Copy Flower's streamed log to ``log_file``; echo the ServerApp's progress lines
    (one per round, :mod:`server.progress`) to this terminal, tagged with the multirun job."""
    tag = job_tag()
    for line in stream:
        log_file.write(line)
        log_file.flush()
        if MARKER in line:
            print(f"{tag}{line[line.index(MARKER) + len(MARKER) :].strip()}", flush=True)


def job_tag() -> str:
    """``[job 3] `` inside a Hydra multirun, else nothing."""
    try:
        hydra = HydraConfig.get()
    except ValueError:  # not under Hydra (fedntc-submit's own entry, tests)
        return ""
    return f"[job {hydra.job.num}] " if hydra.mode == RunMode.MULTIRUN else ""


def read_summary(run_dir: Path, returncode: int) -> dict[str, Any]:
    """The run's summary, or an error with the tail of its log."""
    summary_path = run_dir / "summary.json"
    log_path = run_dir / "flwr-run.log"
    if returncode != 0 or not summary_path.exists():
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise RuntimeError(f"federated run failed (exit {returncode}); log {log_path}:\n{tail}")
    return json.loads(summary_path.read_text())


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    """Console entry ``fedntc-simulate``."""
    exit_on_sigterm()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    summary = run_simulation(cfg, Path(HydraConfig.get().runtime.output_dir))
    print(format_summary(summary), flush=True)


if __name__ == "__main__":
    hydra_main()

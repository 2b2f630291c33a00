"""Hydra entry for a real deployment: submit the app to a running SuperLink with ``flwr run``.

    python -m launch.submit deployment.address=server.example:9093 \
        deployment.root_certificates=/path/ca.crt data=folder strategy=personalized

The config tree is the one ``launch.simulate`` uses; ``deployment.*`` says where the
SuperLink is. The ServerApp writes results on the SuperLink's machine (``output_dir`` there);
the log streams to this machine's Hydra job directory, and when ``output_dir`` is visible
here its summary is printed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from launch.simulate import CONF_DIR, read_summary, split_all, submit_run
from launch.superlink import OFFLINE_ENV, exit_on_sigterm, write_flwr_config
from server.results import format_summary

CONNECTION = "fedntc-remote"


def write_connection(home: Path, address: str, root_certificates: str, insecure: bool) -> None:
    """A private Flower CLI config naming the deployment's SuperLink."""
    if insecure:
        write_flwr_config(home, CONNECTION, address, insecure=True)
        return
    if not root_certificates:
        raise ValueError(
            "deployment.root_certificates (the CA certificate) is required "
            "unless deployment.insecure=true"
        )
    ca = Path(root_certificates).expanduser().resolve()
    if not ca.is_file():
        raise FileNotFoundError(f"deployment.root_certificates {ca} does not exist")
    write_flwr_config(home, CONNECTION, address, str(ca))


def submit(cfg: DictConfig, log_dir: Path) -> tuple[int, Path | None]:
    """Submit one run; return ``flwr run``'s exit code (0: the run completed) and the
    ServerApp's ``output_dir`` when one was given (on the SuperLink's machine).

    The connection file, run-config and streamed log stay in ``log_dir`` on this machine;
    with no ``output_dir`` the ServerApp writes to ``~/.fedntc/runs/<run id>`` on its own.
    """
    conf, _, deployment = split_all(cfg, remote=True)
    home = log_dir / ".flwr"
    write_connection(home, deployment.address, deployment.root_certificates, deployment.insecure)
    env = {**os.environ, **OFFLINE_ENV, "FLWR_HOME": str(home)}
    code = submit_run(conf, log_dir, env, CONNECTION, None, deployment.timeout_s)
    return code, Path(conf.output_dir) if conf.output_dir else None


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    """Console entry ``fedntc-submit``."""
    exit_on_sigterm()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    log_dir = Path(HydraConfig.get().runtime.output_dir)
    code, output_dir = submit(cfg, log_dir)
    if code != 0:
        raise SystemExit(f"flwr run failed with exit code {code}; see {log_dir / 'flwr-run.log'}")
    if output_dir is not None and (output_dir / "summary.json").exists():
        print(format_summary(read_summary(output_dir, code)), flush=True)
    else:
        print(
            f"run finished; results are in output_dir on the SuperLink's machine; log: "
            f"{log_dir / 'flwr-run.log'}",
            flush=True,
        )


if __name__ == "__main__":
    hydra_main()

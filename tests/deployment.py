"""A real Flower deployment on 127.0.0.1 for tests: TLS SuperLink with SuperNode
authentication, and SuperNode processes, each started and stopped by PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

from launch.superlink import OFFLINE_ENV, free_port

ROOT = Path(__file__).resolve().parent.parent
CONNECTION = "fedntc-test"


def make_client_folder(folder: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for split, count in (("train", 4), ("test", 1)):
        for i in range(count):
            yy, xx = np.mgrid[0:48, 0:48]
            base = 127 + 90 * np.sin(xx / (3 + seed) + i) * np.cos(yy / (4 + 2 * seed))
            image = np.clip(base[..., None] + rng.normal(0, 8, (48, 48, 3)), 0, 255)
            path = folder / split / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.astype(np.uint8)).save(path)


class Deployment:
    """Certificates, keys, one SuperLink and any number of SuperNodes under ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.certs = base / "certs"
        self.keys = base / "keys"
        self.home = base / "flwr-home"
        self.port = free_port()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env = {**os.environ, **OFFLINE_ENV, "FLWR_HOME": str(self.home)}
        subprocess.run(
            [
                "bash",
                str(ROOT / "docker" / "generate-certs.sh"),
                str(self.certs),
                "localhost",
                "127.0.0.1",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.home.mkdir(parents=True)
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "127.0.0.1:{self.port}"\n'
            f'root-certificates = "{(self.certs / "ca.crt").resolve()}"\n'
        )

    def run_overrides(
        self, run: Path, clients: int, rounds: int, local_steps: int, min_clients: int, timeout: int
    ) -> list[str]:
        """Hydra overrides of a small run (tiny model, folder data) submitted to this
        deployment."""
        return [
            "model=tiny",
            "data=folder",
            "data.root=/unused",
            f"data.num_clients={clients}",
            "data.crop_size=32",
            "data.batch_size=4",
            f"num_rounds={rounds}",
            f"train.local_steps={local_steps}",
            f"strategy.min_clients={min_clients}",
            f"strategy.round_timeout={timeout}",
            f"deployment.address={self.address}",
            f"deployment.root_certificates={self.certs / 'ca.crt'}",
            f"output_dir={run}",
        ]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self, command: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = (self.base / log_name).open("ab")
        proc = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(proc)
        return proc

    def start_superlink(self) -> None:
        c = self.certs
        self._start(
            [
                "flower-superlink",
                "--ssl-ca-certfile",
                str(c / "ca.crt"),
                "--ssl-certfile",
                str(c / "server.pem"),
                "--ssl-keyfile",
                str(c / "server.key"),
                "--enable-supernode-auth",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--database",
                str(self.base / "superlink.db"),
                "--disable-runtime-dependency-installation",
            ],
            "superlink.log",
        )
        self.wait_for(lambda: self.flwr("supernode", "list").returncode == 0, 60, "SuperLink")

    def flwr(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["flwr", *args, CONNECTION], env=self.env, capture_output=True, text=True, timeout=60
        )

    def make_key(self, name: str) -> Path:
        subprocess.run(
            ["bash", str(ROOT / "docker" / "generate-node-keys.sh"), str(self.keys), name],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return self.keys / name

    def register(self, key: Path) -> int:
        done = subprocess.run(
            ["flwr", "supernode", "register", f"{key}.pub", CONNECTION, "--format", "json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return int(json.loads(done.stdout)["node-id"])

    def start_supernode(self, name: str, key: Path, node_config: str) -> subprocess.Popen[bytes]:
        return self._start(
            [
                "flower-supernode",
                "--superlink",
                self.address,
                "--root-certificates",
                str(self.certs / "ca.crt"),
                "--auth-supernode-private-key",
                str(key),
                "--node-config",
                node_config,
                "--port",
                str(free_port()),
                "--max-retries",
                "5",
                "--max-wait-time",
                "60",
            ],
            f"supernode-{name}.log",
        )

    def online_nodes(self) -> int:
        done = subprocess.run(
            ["flwr", "supernode", "list", CONNECTION, "--format", "json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            return 0
        nodes = json.loads(done.stdout).get("nodes", [])
        return sum(1 for n in nodes if n.get("status") == "online")

    @staticmethod
    def wait_for(predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.5)
        raise TimeoutError(f"{what} not ready after {timeout}s")

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
        """SIGTERM the process group we created for ``proc``; SIGKILL if it lingers."""
        if proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)

    def close(self) -> None:
        for proc in reversed(self.processes):
            self.stop(proc)

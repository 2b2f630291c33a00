"""A local Flower SuperLink in simulation mode, owned (started and stopped) by us.

``flwr run`` against a ``:local:`` connection would start a detached SuperLink that outlives
the job; instead we start ``flower-superlink --simulation`` ourselves on a free loopback
port, point a private ``FLWR_HOME`` at it, and stop it by PID when the job ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import tomli_w

CONNECTION = "fedntc-local"

OFFLINE_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}


def flower_executable(name: str) -> str:
    """Path of a Flower console script (``flwr``, ``flower-superlink``): the one installed
    beside this Python (a venv that is not activated), else the one on ``PATH``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found beside {sys.executable} or on PATH")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_flwr_config(
    home: Path, connection: str, address: str, root_certificates: str = "", insecure: bool = False
) -> None:
    """A private Flower CLI config (``$FLWR_HOME/config.toml``) naming one SuperLink
    connection, written with a TOML writer (paths with quotes or backslashes stay intact)."""
    entry: dict[str, str | bool] = {"address": address}
    if insecure:
        entry["insecure"] = True
    else:
        entry["root-certificates"] = root_certificates
    config = {"superlink": {"default": connection, connection: entry}}
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(tomli_w.dumps(config))


class LocalSimulationLink:
    """Context manager: a SuperLink (simulation runtime) on 127.0.0.1.

    Args:
        home: private ``FLWR_HOME`` (connection file, SuperLink log).
        startup_timeout: seconds to wait for the health endpoint.
        extra_env: more environment for the SuperLink (e.g. ``RAY_ADDRESS``).
    """

    def __init__(
        self, home: Path, startup_timeout: float = 60.0, extra_env: dict[str, str] | None = None
    ) -> None:
        self.home = home
        self.extra_env = extra_env or {}
        self.port = free_port()
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = home / "superlink.log"

    @property
    def env(self) -> dict[str, str]:
        """Environment for ``flwr`` commands talking to this SuperLink (with this Python's
        scripts folder first on ``PATH``, for the processes the SuperLink starts)."""
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        return {**os.environ, **OFFLINE_ENV, "FLWR_HOME": str(self.home), "PATH": path}

    def __enter__(self) -> LocalSimulationLink:
        self.home.mkdir(parents=True, exist_ok=True)
        write_flwr_config(self.home, CONNECTION, f"127.0.0.1:{self.port}", insecure=True)
        command = [
            flower_executable("flower-superlink"),
            "--insecure",
            "--simulation",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--disable-runtime-dependency-installation",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env={**self.env, **self.extra_env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_healthy()
        except BaseException:  # SIGTERM or Ctrl-C while starting: __exit__ will not run
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"flower-superlink exited with code {self.process.returncode}; "
                    f"see {self.log_path}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1.0).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(
            f"flower-superlink not healthy after {self.startup_timeout}s; see {self.log_path}"
        )

    def stop(self) -> None:
        """Terminate the SuperLink and every process under it: its own process group and
        the SuperExec, simulation and Ray processes, which start sessions of their own."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            tree = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        pgid = os.getpgid(self.process.pid)
        os.killpg(pgid, signal.SIGTERM)
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                proc.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait(timeout=15)
        _, alive = psutil.wait_procs(tree, timeout=15)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C (``SystemExit``), so the ``with`` blocks that started
    a SuperLink and ``flwr run`` stop them: a launcher killed by a job scheduler or ``kill``
    leaves no Flower or Ray process behind."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)

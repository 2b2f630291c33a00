import os
import warnings

import pytest
import torch

from client import memo

warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Nothing a test writes lands in the user's home or the working directory."""
    monkeypatch.setenv("FEDNTC_HOME", str(tmp_path / "fedntc-home"))
    torch.manual_seed(0)
    memo.clear()  # each test starts like a fresh ClientApp process


def pytest_configure(config):
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
    os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

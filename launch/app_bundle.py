"""The folder ``flwr run`` bundles: ``pyproject.toml`` and the project's packages, nothing else.

``flwr run DIR`` builds the app bundle (FAB) by visiting every file under ``DIR`` before its
include rules drop most of them. In a clone with its virtual environment inside (the README's
quick start, CI) that is some 50,000 files and 10-14 s per run on 2 cores, for a bundle of a few
hundred source files. So each launcher process stages the packages the ServerApp and ClientApp
import into a private folder once and hands that folder to ``flwr run``; Flower's own rules
still decide what goes into the bundle.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import tomllib
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


def packages(app_dir: Path) -> list[str]:
    """Top-level packages of the project, from ``[tool.setuptools.packages.find] include``."""
    config = tomllib.loads((app_dir / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    names = sorted({pattern.rstrip("*").rstrip(".") for pattern in patterns})
    missing = [name for name in names if not (app_dir / name / "__init__.py").is_file()]
    if missing:
        raise FileNotFoundError(f"{app_dir / 'pyproject.toml'} names packages {missing} not there")
    return names


def stage(app_dir: Path, target: Path) -> Path:
    """Copy ``pyproject.toml``, ``.gitignore`` and the packages of ``app_dir`` into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", ".gitignore"):
        if (app_dir / name).is_file():
            shutil.copy2(app_dir / name, target / name)
    for name in packages(app_dir):
        shutil.copytree(app_dir / name, target / name, ignore=SKIPPED, dirs_exist_ok=True)
    return target


@functools.cache
def staged_app(app_dir: Path = APP_DIR) -> Path:
    """This process's staged copy of ``app_dir`` (made on first use, removed at exit). Every
    run of a multirun uses the same copy, so they run the same code even if the clone changes."""
    folder = Path(tempfile.mkdtemp(prefix="fedntc-app-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return stage(app_dir, folder / app_dir.name)

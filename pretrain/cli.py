"""Hydra entry ``fedntc-pretrain``: train the base model centrally on an image folder.

    fedntc-pretrain                                    # conf/pretrain.yaml: N=64/M=96, λ=0.0067
    fedntc-pretrain steps=40000 export_to=models/bmshj2018-factorized-N64-M96-l0.0067.pt

The real entry, :func:`run`, takes a composed config so tests call it with ``hydra.compose``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from .config import PretrainConfig, from_mapping
from .trainer import pretrain

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
ConfigStore.instance().store(name="pretrain_schema", node=PretrainConfig)


def to_config(cfg: DictConfig) -> PretrainConfig:
    """Validate a composed config; relative paths resolved against this directory."""
    values: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    values.pop("hydra", None)
    conf = from_mapping(values)
    for section, key in (
        (conf.data, "train_dir"),
        (conf.data, "val_dir"),
        (conf, "out_dir"),
        (conf, "export_to"),
    ):
        if getattr(section, key):
            setattr(section, key, str(Path(getattr(section, key)).expanduser().resolve()))
    return conf


def run(cfg: DictConfig, progress: bool = True) -> dict[str, Any]:
    """Train (or resume) and return the last validation row."""
    return pretrain(to_config(cfg), progress=progress)


@hydra.main(config_path=str(CONF_DIR), config_name="pretrain", version_base="1.3")
def hydra_main(cfg: DictConfig) -> None:
    """Console entry ``fedntc-pretrain``."""
    logging.basicConfig(level=logging.INFO)
    print(json.dumps(run(cfg), indent=1), flush=True)


if __name__ == "__main__":
    hydra_main()

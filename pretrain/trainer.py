"""Train a base model centrally on an image folder: resumable, atomic, validated on real
bitstreams.

The folder ``out_dir`` holds ``config.json`` (the run's identity), ``checkpoint.pt`` (model,
both optimizers, RNG states, step, history; rewritten atomically every
``checkpoint_every`` steps) and ``train.csv`` / ``val.csv``. Rerunning with the same
``out_dir`` continues from the checkpoint's step; a folder holding another config is refused.
Batches are a pure function of ``(seed, step)``, so a resumed run trains on exactly the
batches the uninterrupted run would have.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import torch
from compressai.losses import RateDistortionLoss
from compressai.models import CompressionModel
from tqdm import tqdm

from common.checkpoint import atomic_save, atomic_write_csv, atomic_write_text, load_tensors
from common.config import ConfigError, TrainConfig
from common.data.images import list_images, load_images
from common.evaluate import evaluate_coded
from common.init import initial_model
from common.model import resolve_device
from common.precision import memory_format
from common.train import make_optimizers, prepare_for_training, rd_step

from .config import PretrainConfig, identity

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
FORMAT = "fedntc-pretrain-1"


def crop_batch(images: list[torch.Tensor], size: int, count: int, seed: int, step: int):
    """``count`` random crops (random image, position and horizontal flip) in [0, 1], drawn
    from a generator seeded by ``(seed, step)`` alone."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
    crops = []
    for index in torch.randint(len(images), (count,), generator=generator).tolist():
        image = images[index]
        if image.shape[1] < size or image.shape[2] < size:
            raise ValueError(f"training image {index} is smaller than data.crop_size={size}")
        top = int(torch.randint(image.shape[1] - size + 1, (1,), generator=generator))
        left = int(torch.randint(image.shape[2] - size + 1, (1,), generator=generator))
        crop = image[:, top : top + size, left : left + size]
        if torch.rand((), generator=generator) < 0.5:
            crop = crop.flip(-1)
        crops.append(crop)
    return torch.stack(crops).float().div_(255.0)


def check_folder(out_dir: Path, conf: PretrainConfig) -> None:
    """Refuse a folder that holds a run of another config (naming the differing keys)."""
    saved_path = out_dir / "config.json"
    if not saved_path.exists():
        if (out_dir / CHECKPOINT).exists():
            raise ConfigError(f"{out_dir} holds {CHECKPOINT} but no config.json")
        return
    try:
        saved = json.loads(saved_path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"cannot read {saved_path}: {err}") from err
    mine = identity(conf)
    differ = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
    if differ:
        details = ", ".join(f"{k}: {saved.get(k)!r} there, {mine.get(k)!r} here" for k in differ)
        raise ConfigError(
            f"{out_dir} holds a pretraining run of another config ({details}); "
            "choose another out_dir"
        )


def pretrain(conf: PretrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train (or continue training) up to ``conf.steps``; return the last validation row."""
    out_dir = Path(conf.out_dir).expanduser()
    check_folder(out_dir, conf)
    device = resolve_device(conf.train.device)
    torch.manual_seed(conf.seed)  # the quantisation noise; a resumed run restores its state
    model = initial_model(conf.model, seed=conf.seed, lmbda=conf.train.lmbda)
    train_conf = TrainConfig(lr=conf.train.lr, aux_lr=conf.train.aux_lr)
    optimizers = make_optimizers(model, train_conf)
    saved = _load(out_dir, model, optimizers, conf)
    step, history, val_rows = saved["step"], saved["history"], saved["val"]
    if step and saved_lrs_differ(saved.get("config"), conf, step):
        raise ConfigError(
            f"{out_dir}: the new steps/decay_steps/lr_decay change the lr of steps already "
            "trained; extend steps or keep the schedule"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json.dumps(identity(conf), indent=1, sort_keys=True), out_dir / "config.json")
    train_images = load_images(list_images(Path(conf.data.train_dir)), conf.data.max_side)
    val_images = load_images(list_images(Path(conf.data.val_dir)), conf.data.max_side)
    if conf.data.val_max_images:
        val_images = val_images[: conf.data.val_max_images]
    prepare_for_training(model, device, conf.train.precision)
    _optimizers_to(optimizers, device)
    criterion = RateDistortionLoss(lmbda=conf.train.lmbda)
    fmt = memory_format(conf.train.precision)
    window: list[dict[str, float]] = []
    bar = tqdm(total=conf.steps, initial=step, disable=not progress, desc="pretrain")
    while step < conf.steps:
        for optimizer in optimizers[:1]:
            for group in optimizer.param_groups:
                group["lr"] = conf.lr_at(step)
        x = crop_batch(train_images, conf.data.crop_size, conf.data.batch_size, conf.seed, step)
        x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
        window.append(
            rd_step(model, x, criterion, optimizers, conf.train.clip_max_norm, conf.train.precision)
        )
        step += 1
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{window[-1]['loss']:.3f}", bpp=f"{window[-1]['bpp_loss']:.3f}")
        if step % conf.validate_every == 0 or step == conf.steps:
            val_rows.append({"step": step, **validate(model, val_images)})
            bar.write(
                f"step {step}: val {val_rows[-1]['real_bpp']:.3f} bpp, "
                f"{val_rows[-1]['psnr']:.2f} dB, MS-SSIM {val_rows[-1]['ms_ssim']:.4f}"
            )
        if step % conf.checkpoint_every == 0 or step == conf.steps:
            history.append(_mean_row(step, window))
            window = []
            _save(out_dir, model, optimizers, conf, step, history, val_rows)
    bar.close()
    if conf.export_to:
        export_base(out_dir / CHECKPOINT, Path(conf.export_to).expanduser())
    return val_rows[-1] if val_rows else {}


def validate(model: CompressionModel, images: list[torch.Tensor]) -> dict[str, float]:
    """Real-bitstream bpp / PSNR / MS-SSIM of a CPU fp32 copy of ``model`` on ``images``."""
    clone = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).float()
    with torch.random.fork_rng(devices=[]):  # validating never changes the training's RNG
        return evaluate_coded(clone, images)


def saved_lrs_differ(saved: dict | None, conf: PretrainConfig, done: int) -> bool:
    """True if the schedule saved with the checkpoint gave some done step another lr."""
    if not saved:
        return False
    before = copy.copy(conf)
    before.steps, before.decay_steps, before.lr_decay = (
        saved["steps"],
        saved["decay_steps"],
        saved["lr_decay"],
    )
    return any(before.lr_at(s) != conf.lr_at(s) for s in range(done))


def _mean_row(step: int, window: list[dict[str, float]]) -> dict[str, float]:
    keys = window[0] if window else {}
    return {"step": step, **{k: sum(w[k] for w in window) / len(window) for k in keys}}


def _optimizers_to(optimizers, device: torch.device) -> None:
    for optimizer in optimizers:
        for state in optimizer.state.values():
            for key, value in state.items():
                if torch.is_tensor(value) and key != "step":
                    state[key] = value.to(device)


def _save(out_dir: Path, model, optimizers, conf, step, history, val_rows) -> None:
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    atomic_save(
        {
            "format": FORMAT,
            "step": step,
            "model": state,
            "optimizer": optimizers[0].state_dict(),
            "aux_optimizer": optimizers[1].state_dict(),
            "rng": rng,
            "history": history,
            "val": val_rows,
            "config": {
                "steps": conf.steps,
                "decay_steps": conf.decay_steps,
                "lr_decay": conf.lr_decay,
            },
        },
        out_dir / CHECKPOINT,
    )
    atomic_write_csv(history, out_dir / "train.csv") if history else None
    atomic_write_csv(val_rows, out_dir / "val.csv") if val_rows else None


def _load(out_dir: Path, model, optimizers, conf) -> dict[str, Any]:
    path = out_dir / CHECKPOINT
    if not path.exists():
        return {"step": 0, "history": [], "val": []}
    saved = load_tensors(path)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path} is not a fedntc pretraining checkpoint")
    model.load_state_dict(saved["model"])
    optimizers[0].load_state_dict(saved["optimizer"])
    optimizers[1].load_state_dict(saved["aux_optimizer"])
    torch.set_rng_state(saved["rng"]["torch"])
    if "cuda" in saved["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
    log.info("resuming %s at step %d", out_dir, saved["step"])
    return saved


def export_base(checkpoint: Path, dest: Path) -> Path:
    """Write the model of a pretraining checkpoint as a shipped base model file."""
    from common.init import save_base

    saved = load_tensors(checkpoint)
    config = json.loads((checkpoint.parent / "config.json").read_text())
    meta = {
        "name": config["model.name"],
        "N": config["model.N"],
        "M": config["model.M"],
        "lmbda": config["train.lmbda"],
        "steps": saved["step"],
        "precision": config["train.precision"],
    }
    save_base(saved["model"], meta, dest)
    return dest

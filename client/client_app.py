"""fedntc ClientApp: trains the shared transforms with a personal entropy model.

Per message the client takes a copy of the run's starting model (built once per process,
:mod:`client.memo`, like its parsed config and decoded data), overlays the server's shared
weights and its own personal state, and replies with the shared keys only. Settings come
from three places: ``context.run_config`` (the run), ``context.node_config`` (which client,
its data, its state dir and device) and the message's ``ConfigRecord`` (this round's lr, λ,
steps).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from compressai.models import CompressionModel
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from client import memo
from client.state import Version, load_personal, save_personal
from common.config import RunConfig, TrainConfig
from common.data import ClientData, client_batches
from common.evaluate import evaluate_client
from common.metrics import psnr_from_mse
from common.model import resolve_device
from common.optimizer_state import export_moments, restore_moments, split_moments
from common.refit import (
    REFIT_BEFORE_EVALUATE,
    REFIT_BEFORE_TRAIN,
    entropy_model_keys,
    refit_entropy_model,
)
from common.run_folder import RunFolder
from common.split import KeySplit, fingerprint, merge_state
from common.train import make_optimizers, prepare_for_training, train_steps

app = ClientApp()

NODE_CONFIG_KEYS = frozenset(
    {"partition-id", "num-partitions", "data-dir", "state-dir", "device", "threads"}
)


@dataclass
class ClientSetup:
    """Everything a handler derives from the context before touching the model."""

    conf: RunConfig
    client_id: int
    folder: RunFolder
    state_dir: str
    device: torch.device
    data_dir: str

    @classmethod
    def from_context(cls, context: Context) -> ClientSetup:
        node = dict(context.node_config)
        unknown = sorted(set(node) - NODE_CONFIG_KEYS)
        if unknown:
            raise ValueError(
                f"unknown node-config key(s) {unknown}; known: {sorted(NODE_CONFIG_KEYS)}"
            )
        conf = memo.run_config(context.run_config)
        client_id = node_int(node, "partition-id")
        if "num-partitions" in node and node_int(node, "num-partitions") != conf.data.num_clients:
            raise ValueError(
                f"node-config num-partitions={node['num-partitions']} but the run has "
                f"data.num_clients={conf.data.num_clients}"
            )
        data_dir = str(node.get("data-dir", ""))
        if data_dir and conf.data.source != "folder":
            raise ValueError(
                f"node-config data-dir is used with data.source=folder; this run reads "
                f"data.source={conf.data.source}"
            )
        if "threads" in node:  # several SuperNodes on one host: share its cores
            threads = node_int(node, "threads")
            if threads < 1:
                raise ValueError(f"node-config 'threads' must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        if "device" in node:
            device = resolve_device(str(node["device"]), key="node-config device")
        else:
            device = resolve_device(conf.train.device)
        return cls(
            conf=conf,
            client_id=client_id,
            folder=RunFolder.of(conf, context.run_id),
            state_dir=str(node.get("state-dir", "")),
            device=device,
            data_dir=data_dir,
        )

    def state_file(self, run_uid: str) -> Path:
        return self.folder.client_state_file(self.conf, self.client_id, self.state_dir, run_uid)

    def load_data(self) -> ClientData:
        return memo.client_data(self.conf.data, self.client_id, self.conf.seed, self.data_dir)


def node_int(node: dict, key: str) -> int:
    """An integer node-config value, with an error naming the key."""
    if key not in node:
        raise ValueError(f"node-config needs '{key}' (e.g. --node-config \"{key}=0\")")
    try:
        return int(node[key])
    except (TypeError, ValueError) as err:
        raise ValueError(f"node-config '{key}' must be an integer, got {node[key]!r}") from err


def ray_node() -> int:
    """48 bits of the Ray node id this ClientApp runs on in a simulation (0 outside Ray), so a
    run's records show which machine of a Ray cluster trained which client."""
    ray = sys.modules.get("ray")  # imported by Flower's Ray backend, never by us
    if ray is None or not ray.is_initialized():
        return 0
    return int(ray.get_runtime_context().get_node_id()[:12], 16)


def run_round(msg: Message) -> tuple[str, int]:
    """The run uid and server round a message belongs to (sent by the ServerApp)."""
    sent = msg.content["config"] if "config" in msg.content.config_records else {}
    missing = [k for k in ("run-uid", "server-round") if k not in sent]
    if missing:
        raise ValueError(f"the server's message lacks {missing} (a ServerApp of another version?)")
    return str(sent["run-uid"]), int(sent["server-round"])


@dataclass
class ClientModel:
    """The model a handler works on, and where its personal part came from."""

    model: CompressionModel
    split: KeySplit
    version: Version  # the personal state it was built from (round 0: a fresh one)
    moments: dict[str, torch.Tensor]  # that state's Adam moments (common.optimizer_state)


def build_model(
    setup: ClientSetup, msg: Message, context: Context, before_round: int
) -> ClientModel:
    """The model with the server's shared weights and this client's newest personal state
    saved before ``before_round``."""
    model = memo.starting_model(setup.conf.model, setup.conf.seed, setup.conf.train.lmbda)
    split = KeySplit.from_keys(model.state_dict(), setup.conf.strategy.shared_prefixes)
    shared = msg.content["arrays"].to_torch_state_dict()
    split.check_shared_keys(shared, origin="the server's message")
    run_uid, _ = run_round(msg)
    state_file = setup.state_file(run_uid)
    version = load_personal(context, state_file, setup.conf.model, run_uid, before_round)
    personal, moments = split_moments(version[1])
    # CompressionModel.load_state_dict resizes the entropy-coding tables as needed.
    model.load_state_dict(merge_state(model.state_dict(), personal, shared))
    return ClientModel(model, split, version, moments)


def optimizers_for(
    built: ClientModel, conf: TrainConfig, setup: ClientSetup, origin: str
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """Net/aux Adam on the device, with the personal parameters' saved moments when the run
    keeps optimizer state (the shared parameters' moments start afresh on new weights)."""
    prepare_for_training(built.model, setup.device, conf.precision)
    optimizers = make_optimizers(built.model, conf)
    if setup.conf.strategy.keep_optimizer_state and built.moments:
        restore_moments(built.model, optimizers, built.moments, origin)
    return optimizers


def refit(
    built: ClientModel, setup: ClientSetup, conf: TrainConfig, data: ClientData, seed: int
) -> tuple[dict[str, float], tuple[torch.optim.Optimizer, torch.optim.Optimizer]]:
    """``strategy.refit_steps`` steps of the entropy model on the received transforms
    (:mod:`common.refit`); returns the refit's means and the optimizers it stepped."""
    optimizers = optimizers_for(built, conf, setup, origin=f"client {setup.client_id}")
    keys = entropy_model_keys(built.model, built.split, setup.conf.strategy.method)
    batches = client_batches(data, setup.conf.data, seed)
    steps = setup.conf.strategy.refit_steps
    stats = refit_entropy_model(built.model, batches, conf, setup.device, keys, steps, optimizers)
    return stats, optimizers


def round_train_config(base: TrainConfig, msg: Message) -> TrainConfig:
    """The run's training settings, overridden by the values the server sent this round."""
    sent = msg.content["config"]
    return dataclasses.replace(
        base,
        lr=float(sent.get("lr", base.lr)),
        aux_lr=float(sent.get("aux-lr", base.aux_lr)),
        lmbda=float(sent.get("lmbda", base.lmbda)),
        local_steps=int(sent.get("local-steps", base.local_steps)),
    )


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Train locally, keep the personal part, reply with the shared part only."""
    setup = ClientSetup.from_context(context)
    run_uid, server_round = run_round(msg)
    built = build_model(setup, msg, context, before_round=server_round)
    model, split, trained_from = built.model, built.split, built.version
    data = setup.load_data()
    conf = round_train_config(setup.conf.train, msg)
    seed = setup.conf.seed * 1_000_003 + setup.client_id * 1009 + server_round
    torch.manual_seed(seed)  # the quantization noise: same inputs, same round
    started = time.perf_counter()
    refit_stats: dict[str, float] = {}
    if setup.conf.strategy.method in REFIT_BEFORE_TRAIN and setup.conf.strategy.refit_steps:
        refit_stats, optimizers = refit(built, setup, conf, data, seed=seed + 700_001)
    else:
        optimizers = optimizers_for(built, conf, setup, origin=f"client {setup.client_id}")
    batches = client_batches(data, setup.conf.data, seed)
    stats = train_steps(model, batches, conf, setup.device, optimizers=optimizers)
    seconds = time.perf_counter() - started
    state = model.state_dict()
    personal = split.personal_state(state)
    if setup.conf.strategy.keep_optimizer_state:
        personal.update(export_moments(model, optimizers, split.personal))
    save_personal(
        context,
        personal,
        setup.state_file(run_uid),
        setup.conf.model,
        server_round,
        run_uid,
        trained_from,
    )
    metrics = MetricRecord(
        {
            **stats,
            **{f"refit-{k}": v for k, v in refit_stats.items() if k == "bpp_loss"},
            "psnr": psnr_from_mse(stats["mse_loss"]),
            "lr": conf.lr,
            "train-seconds": seconds,
            "images-per-second": conf.local_steps * setup.conf.data.batch_size / seconds,
            "client-id": setup.client_id,
            "state-round": trained_from[0],
            "ray-node": ray_node(),
            "num-examples": len(data.train),
        }
    )
    content = RecordDict({"arrays": ArrayRecord(split.shared_state(state)), "metrics": metrics})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """Entropy-code the client's test images with the global transforms and its own
    entropy model; reply with real and estimated bpp, PSNR and MS-SSIM."""
    started = time.perf_counter()
    setup = ClientSetup.from_context(context)
    _, server_round = run_round(msg)
    built = build_model(setup, msg, context, before_round=server_round + 1)
    model, split = built.model, built.split
    shared_hash = fingerprint(split.shared_state(model.state_dict()))  # as received
    data = setup.load_data()
    if setup.conf.strategy.method in REFIT_BEFORE_EVALUATE and setup.conf.strategy.refit_steps:
        # Fit the entropy model to the transforms it codes with (not saved: evaluation
        # leaves the client's state as training left it).
        seed = setup.conf.seed * 1_000_003 + setup.client_id * 1009 + server_round
        torch.manual_seed(seed + 500_009)
        refit(built, setup, round_train_config(setup.conf.train, msg), data, seed=seed + 500_009)
    results = evaluate_client(model, data.test, data.kind)
    metrics = MetricRecord(
        {
            **results,
            "shared-hash": shared_hash,
            "evaluate-seconds": time.perf_counter() - started,
            "client-id": setup.client_id,
            "num-examples": len(data.test),
        }
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)

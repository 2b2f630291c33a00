"""fedntc ClientApp: trains the shared transforms with a personal entropy model.

Per message the client rebuilds the model, overlays the server's shared weights and its own
personal state, and replies with the shared keys only. Settings come from three places:
``context.run_config`` (the run), ``context.node_config`` (which client, its data, its
state dir and device) and the message's ``ConfigRecord`` (this round's lr, λ, steps).
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

from client.state import Version, load_personal, save_personal
from common.config import RunConfig, TrainConfig, from_run_config
from common.data import ClientData, client_batches, load_client_data
from common.evaluate import evaluate_client
from common.init import initial_model
from common.metrics import psnr_from_mse
from common.model import resolve_device
from common.run_folder import RunFolder
from common.split import KeySplit, fingerprint, merge_state
from common.train import train_steps

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
        conf = from_run_config(context.run_config)
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
        return load_client_data(self.conf.data, self.client_id, self.conf.seed, self.data_dir)


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


def build_model(
    setup: ClientSetup, msg: Message, context: Context, before_round: int
) -> tuple[CompressionModel, KeySplit, Version]:
    """The model with the server's shared weights and this client's newest personal state
    saved before ``before_round``, and that state with its round (0: a fresh one)."""
    model = initial_model(setup.conf.model, seed=setup.conf.seed)
    split = KeySplit.from_keys(model.state_dict(), setup.conf.strategy.shared_prefixes)
    shared = msg.content["arrays"].to_torch_state_dict()
    split.check_shared_keys(shared, origin="the server's message")
    run_uid, _ = run_round(msg)
    state_file = setup.state_file(run_uid)
    version = load_personal(context, state_file, setup.conf.model, run_uid, before_round)
    # CompressionModel.load_state_dict resizes the entropy-coding tables as needed.
    model.load_state_dict(merge_state(model.state_dict(), version[1], shared))
    return model, split, version


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
    model, split, trained_from = build_model(setup, msg, context, before_round=server_round)
    data = setup.load_data()
    conf = round_train_config(setup.conf.train, msg)
    seed = setup.conf.seed * 1_000_003 + setup.client_id * 1009 + server_round
    started = time.perf_counter()
    batches = client_batches(data, setup.conf.data, seed)
    stats = train_steps(model, batches, conf, setup.device)
    seconds = time.perf_counter() - started
    state = model.state_dict()
    save_personal(
        context,
        split.personal_state(state),
        setup.state_file(run_uid),
        setup.conf.model,
        server_round,
        run_uid,
        trained_from,
    )
    metrics = MetricRecord(
        {
            **stats,
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
    setup = ClientSetup.from_context(context)
    _, server_round = run_round(msg)
    model, split, _ = build_model(setup, msg, context, before_round=server_round + 1)
    state = model.state_dict()
    data = setup.load_data()
    results = evaluate_client(model, data.test, data.kind)
    metrics = MetricRecord(
        {
            **results,
            "shared-hash": fingerprint(split.shared_state(state)),
            "client-id": setup.client_id,
            "num-examples": len(data.test),
        }
    )
    return Message(content=RecordDict({"metrics": metrics}), reply_to=msg)

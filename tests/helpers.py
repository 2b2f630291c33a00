"""Builders for Flower contexts and messages used by the tests."""

from __future__ import annotations

import itertools
import time

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, Metadata, RecordDict

from common.config import (
    SHARED_PREFIXES,
    DataConfig,
    ModelConfig,
    RunConfig,
    StrategyConfig,
    TrainConfig,
    flatten,
)

_ids = itertools.count(1)


def tiny_config(tmp_path, method: str = "personalized", **overrides) -> RunConfig:
    """A run config small enough for unit tests: tiny model, synthetic 32x32 data."""
    prefixes = list(SHARED_PREFIXES[method])
    return RunConfig(
        model=ModelConfig(name="bmshj2018-factorized", N=8, M=12),
        data=DataConfig(
            source="synthetic",
            num_clients=3,
            image_size=32,
            crop_size=32,
            batch_size=4,
            train_size=16,
            test_size=2,
            latent_dim=8,
        ),
        train=TrainConfig(local_steps=2, device="cpu"),
        strategy=StrategyConfig(method=method, shared_prefixes=prefixes, min_clients=2),
        output_dir=str(tmp_path / "run"),
        **overrides,
    )


TEST_RUN = "test-run"


def make_context(conf: RunConfig, client_id: int, **node_config) -> Context:
    """A ClientApp context as a SuperNode would build it."""
    return Context(
        run_id=1,
        node_id=100 + client_id,
        node_config={
            "partition-id": client_id,
            "num-partitions": conf.data.num_clients,
            **node_config,
        },
        state=RecordDict(),
        run_config=flatten(conf),
    )


def metadata(message_type: str, src: int, dst: int, run_id: int = 1) -> Metadata:
    return Metadata(
        run_id=run_id,
        message_id=f"m{next(_ids)}",
        src_node_id=src,
        dst_node_id=dst,
        reply_to_message_id="",
        group_id="",
        created_at=time.time(),
        ttl=3600.0,
        message_type=message_type,
    )


def server_message(
    arrays: ArrayRecord, config: dict, message_type: str = MessageType.TRAIN, node_id: int = 100
) -> Message:
    """A message from the server (node 0) to ``node_id``, with the run uid and round the
    ServerApp sends (``TEST_RUN``, round 1) unless ``config`` names them."""
    config = {"run-uid": TEST_RUN, "server-round": 1, **config}
    content = RecordDict({"arrays": arrays, "config": ConfigRecord(config)})
    return Message(content=content, metadata=metadata(message_type, 0, node_id))


def client_reply(
    content: RecordDict, node_id: int, message_type: str = MessageType.TRAIN
) -> Message:
    """A reply from ``node_id`` to the server."""
    return Message(content=content, metadata=metadata(message_type, node_id, 0))

"""CUDA path: runs only where a GPU is present (skipped on CPU-only machines and in CI)."""

import pytest
import torch
from flwr.app import MessageType

from client.client_app import evaluate, train
from common.model import resolve_device
from tests.helpers import make_context, server_message, tiny_config
from tests.test_client import ROUND_CONFIG, initial_arrays

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


def test_auto_device_is_cuda():
    assert resolve_device("auto").type == "cuda"


def test_client_trains_on_cuda_and_codes_on_cpu(tmp_path):
    conf = tiny_config(tmp_path)
    _, arrays = initial_arrays(conf)
    context = make_context(conf, 0, device="cuda")
    reply = train(server_message(arrays, {**ROUND_CONFIG, "server-round": 1}), context)
    assert not reply.has_error() and reply.content["metrics"]["num-examples"] > 0
    metrics = evaluate(server_message(arrays, {}, MessageType.EVALUATE), context).content["metrics"]
    assert metrics["real_bpp"] > 0

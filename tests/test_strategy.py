import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Error, Message, MetricRecord, RecordDict

from common.split import KeySplit
from server.strategy import SharedKeysFedAvg
from tests.helpers import client_reply, metadata

SHARED = {"g_a.w", "g_s.w"}
SPLIT = KeySplit(shared=frozenset(SHARED), personal=frozenset({"entropy_bottleneck.quantiles"}))


def reply(node, values, num_examples, extra=None):
    arrays = {k: Array(np.full((2, 2), v, dtype=np.float32)) for k, v in values.items()}
    arrays.update(extra or {})
    metrics = MetricRecord({"loss": float(node), "num-examples": num_examples, "client-id": node})
    return client_reply(RecordDict({"arrays": ArrayRecord(arrays), "metrics": metrics}), node)


def test_weighted_mean_of_shared_keys():
    strategy = SharedKeysFedAvg(SPLIT)
    replies = [
        reply(1, {"g_a.w": 1.0, "g_s.w": 10.0}, 1),
        reply(2, {"g_a.w": 4.0, "g_s.w": 40.0}, 3),
    ]
    arrays, metrics = strategy.aggregate_train(1, replies)
    assert set(arrays.keys()) == SHARED
    np.testing.assert_allclose(arrays["g_a.w"].numpy(), np.full((2, 2), (1 * 1 + 4 * 3) / 4))
    np.testing.assert_allclose(arrays["g_s.w"].numpy(), np.full((2, 2), (10 + 40 * 3) / 4))
    assert metrics["loss"] == pytest.approx((1 * 1 + 2 * 3) / 4)
    assert "client-id" not in metrics
    assert [r["client-id"] for r in strategy.client_rows] == [1, 2]
    assert strategy.round_rows == [
        {"phase": "train", "round": 1, "loss": pytest.approx(1.75), "clients": 2, "failures": 0}
    ]


def test_reply_with_personal_key_is_rejected():
    strategy = SharedKeysFedAvg(SPLIT)
    leak = {"entropy_bottleneck.quantiles": Array(np.zeros((1, 3), dtype=np.float32))}
    replies = [
        reply(1, {"g_a.w": 1.0, "g_s.w": 3.0}, 1),
        reply(2, {"g_a.w": 5.0, "g_s.w": 5.0}, 1, leak),
    ]
    arrays, _ = strategy.aggregate_train(1, replies)
    np.testing.assert_allclose(arrays["g_a.w"].numpy(), 1.0)  # node 2 left out entirely
    assert "entropy_bottleneck.quantiles" not in arrays
    [failure] = strategy.failures
    assert failure["node_id"] == 2 and "entropy_bottleneck.quantiles" in failure["reason"]


def test_reply_missing_a_shared_key_is_rejected():
    strategy = SharedKeysFedAvg(SPLIT)
    arrays, _ = strategy.aggregate_train(1, [reply(1, {"g_a.w": 1.0}, 1)])
    assert arrays is None
    assert "missing shared keys ['g_s.w']" in strategy.failures[0]["reason"]


def test_failed_client_is_recorded_and_others_aggregate():
    strategy = SharedKeysFedAvg(SPLIT)
    failed = Message(Error(code=0, reason="client crashed"), metadata=metadata("train", 3, 0))
    arrays, _ = strategy.aggregate_train(2, [reply(1, {"g_a.w": 2.0, "g_s.w": 2.0}, 1), failed])
    np.testing.assert_allclose(arrays["g_a.w"].numpy(), 2.0)
    assert strategy.failures == [
        {"phase": "train", "round": 2, "node_id": 3, "reason": "client crashed"}
    ]


def test_nothing_shared_aggregates_to_empty_record():
    strategy = SharedKeysFedAvg(KeySplit(shared=frozenset(), personal=frozenset({"g_a.w"})))
    arrays, _ = strategy.aggregate_train(1, [reply(1, {}, 1), reply(2, {}, 2)])
    assert len(arrays) == 0

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from common.split import KeySplit
from server.strategy import SharedKeysFedAvg, server_strategy
from tests.helpers import client_reply, metadata

SHARED = {"g_a.w", "g_s.w"}
SPLIT = KeySplit(shared=frozenset(SHARED), personal=frozenset({"entropy_bottleneck.quantiles"}))


@pytest.fixture
def server_process(monkeypatch):
    """The task identity a ServerApp process has, which building messages needs."""
    for key in ("_run_id", "_node_id", "_task_id"):
        monkeypatch.setattr(TaskIdentity, key, 1)


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
        {
            "phase": "train",
            "round": 1,
            "loss": pytest.approx(1.75),
            "clients": 2,
            "failures": 0,
            "below_min_clients": False,
        }
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


def eval_reply(node, metrics=None):
    values = {"real_bpp": 0.5, "est_bpp": 0.4, "psnr": 30.0, "ms_ssim": 0.9}
    values = metrics if metrics is not None else values
    content = RecordDict(
        {"metrics": MetricRecord({**values, "num-examples": 2, "client-id": node})}
    )
    return client_reply(content, node, "evaluate")


def test_malformed_train_replies_are_failures_and_the_round_goes_on():
    strategy = SharedKeysFedAvg(SPLIT)
    good = reply(1, {"g_a.w": 2.0, "g_s.w": 2.0}, 1)
    no_metrics = client_reply(
        RecordDict({"arrays": ArrayRecord({"g_a.w": Array(np.ones((2, 2), np.float32))})}), 2
    )
    odd = reply(3, {"g_a.w": 9.0, "g_s.w": 9.0}, 1)
    odd.content["metrics"]["surprise"] = 1.0  # keys differ from the other replies'
    zero = reply(4, {"g_a.w": 9.0, "g_s.w": 9.0}, 0)
    arrays, metrics = strategy.aggregate_train(1, [good, no_metrics, odd, zero])
    np.testing.assert_allclose(arrays["g_a.w"].numpy(), 2.0)  # only node 1 averaged
    reasons = {f["node_id"]: f["reason"] for f in strategy.failures}
    assert "0 MetricRecords" in reasons[2]
    assert "extra ['surprise']" in reasons[3]
    assert "num-examples=0" in reasons[4]
    assert strategy.round_rows[-1]["clients"] == 1 and strategy.round_rows[-1]["failures"] == 3


def test_evaluate_replies_are_validated():
    strategy = SharedKeysFedAvg(SPLIT)
    partial = eval_reply(2, {"real_bpp": 0.5})
    metrics = strategy.aggregate_evaluate(1, [eval_reply(1), partial, eval_reply(3)])
    assert metrics["psnr"] == pytest.approx(30.0)
    [failure] = strategy.failures
    assert failure["node_id"] == 2 and "lacks metrics" in failure["reason"]
    assert "psnr" in failure["reason"]


class RecordingGrid:
    """Just enough of a Grid for configure_*: the nodes that are connected."""

    def __init__(self, nodes):
        self.nodes = nodes

    def get_node_ids(self):
        return self.nodes


def test_nodes_that_do_not_answer_in_time_are_failures_with_their_ids(server_process):
    strategy = SharedKeysFedAvg(SPLIT, round_timeout=30, min_train_nodes=3, min_available_nodes=3)
    arrays = ArrayRecord({k: Array(np.zeros((2, 2), np.float32)) for k in SHARED})
    sent = list(strategy.configure_train(1, arrays, ConfigRecord(), RecordingGrid([11, 12, 13])))
    assert sorted(m.metadata.dst_node_id for m in sent) == [11, 12, 13]
    for msg in sent:  # what Grid.push_messages does
        msg.metadata.__dict__["_message_id"] = msg.object_id
    answer = next(m for m in sent if m.metadata.dst_node_id == 11)
    ok = reply(11, {"g_a.w": 1.0, "g_s.w": 1.0}, 1)
    ok.metadata.__dict__["_reply_to_message_id"] = answer.metadata.message_id
    # the SuperLink's error reply for a vanished node comes from the SuperLink (node 1)
    vanished = next(m for m in sent if m.metadata.dst_node_id == 12)
    error = Message(Error(code=0, reason="node unavailable"), metadata=metadata("train", 1, 0))
    error.metadata.__dict__["_reply_to_message_id"] = vanished.metadata.message_id
    strategy.aggregate_train(1, [ok, error])
    assert sorted((f["node_id"], f["reason"]) for f in strategy.failures) == [
        (12, "node unavailable"),
        (13, "no reply within 30 s"),
    ]
    row = strategy.round_rows[-1]
    assert (row["clients"], row["failures"], row["below_min_clients"]) == (1, 2, True)


TWO_NODES = {"min_train_nodes": 2, "min_available_nodes": 2}


def _first_round(strategy) -> ArrayRecord:
    """Round 1 from all-zero shared arrays: nodes 1 and 2 reply with g_a at 1 and 3, g_s at 2
    (a mean update of 2 on every coordinate); the strategy's new arrays."""
    current = ArrayRecord({k: Array(np.zeros((2, 2), np.float32)) for k in SHARED})
    replies = [reply(1, {"g_a.w": 1.0, "g_s.w": 2.0}, 1), reply(2, {"g_a.w": 3.0, "g_s.w": 2.0}, 1)]
    list(strategy.configure_train(1, current, ConfigRecord(), RecordingGrid([1, 2])))
    return strategy.aggregate_train(1, replies)[0]


@pytest.mark.parametrize("optimizer", ["fedavgm", "fedadam"])
def test_server_optimizer_moves_the_shared_keys_from_the_current_weights(server_process, optimizer):
    """Flower's FedAvgM / FedAdam step on the mean of the accepted shared arrays only."""
    moved = _first_round(server_strategy(optimizer, 0.5, 0.0, SPLIT, **TWO_NODES))
    mean = _first_round(server_strategy("fedavg", 0.5, 0.0, SPLIT, **TWO_NODES))
    assert set(moved.keys()) == SHARED == set(mean.keys())
    np.testing.assert_allclose(mean["g_a.w"].numpy(), 2.0)
    step = moved["g_a.w"].numpy()
    if optimizer == "fedavgm":  # SGD with lr 0.5 on the pseudo-gradient current - mean
        np.testing.assert_allclose(step, 1.0)
    else:  # Adam's first step moves every coordinate by about eta in the update's direction
        assert np.all(step > 0) and np.all(step < 2.0)
        assert not np.allclose(step, mean["g_a.w"].numpy())


@pytest.mark.parametrize("tau", [1e-3, 10.0])
def test_fedadam_divides_by_the_configured_tau(server_process, tau):
    """FedAdam's first step is eta_1 * m / (sqrt(v) + tau): with tau far above the update it
    shrinks to a small multiple of the update, with Flower's 1e-3 it is about eta."""
    strategy = server_strategy("fedadam", 0.5, 0.0, SPLIT, server_tau=tau, **TWO_NODES)
    moved = _first_round(strategy)
    delta, beta_2 = 2.0, strategy.beta_2  # the mean moved every coordinate by 2
    eta_1 = 0.5 * np.sqrt(1 - beta_2**2)  # Flower's bias correction at round 1, beta_1 = 0
    expected = eta_1 * delta / (np.sqrt((1 - beta_2) * delta**2) + tau)
    np.testing.assert_allclose(moved["g_a.w"].numpy(), expected, rtol=1e-5)


def test_unknown_server_optimizer_is_refused():
    with pytest.raises(ValueError, match="server_optimizer"):
        server_strategy("sgd", 1.0, 0.0, SPLIT)


@pytest.mark.parametrize("optimizer", ["fedavgm", "fedadam"])
def test_a_resumed_server_optimizer_continues_from_its_checkpointed_state(
    server_process, tmp_path, optimizer
):
    """Round 2 after a restart from round 1's checkpoint (weights + server state, through
    the run folder's file) gives the same weights as round 2 of an uninterrupted run."""
    import torch

    from common.run_folder import RunFolder, load_server_state, load_shared_checkpoint

    start = ArrayRecord({k: Array(np.zeros((2, 2), np.float32)) for k in SHARED})
    rounds = [
        [reply(1, {"g_a.w": 1.0, "g_s.w": 2.0}, 1), reply(2, {"g_a.w": 3.0, "g_s.w": 2.0}, 1)],
        [reply(1, {"g_a.w": 0.5, "g_s.w": 1.0}, 1), reply(2, {"g_a.w": 2.5, "g_s.w": 4.0}, 1)],
    ]

    def step(strategy, server_round, arrays, run_round=None):
        list(strategy.configure_train(server_round, arrays, ConfigRecord(), RecordingGrid([1, 2])))
        replies = rounds[(run_round or server_round) - 1]
        return strategy.aggregate_train(server_round, replies)[0]

    straight = server_strategy(optimizer, 0.5, 0.9, SPLIT, **TWO_NODES)
    target = step(straight, 2, step(straight, 1, start))

    first = server_strategy(optimizer, 0.5, 0.9, SPLIT, **TWO_NODES)
    after_one = step(first, 1, start)
    assert first.server_state()  # there is something to keep
    folder = RunFolder(tmp_path)
    path = folder.save_checkpoint(
        1,
        after_one.to_torch_state_dict(),
        "personalized",
        {k: torch.as_tensor(v) for k, v in first.server_state().items()},
    )
    shared, _ = load_shared_checkpoint(path)
    resumed = server_strategy(optimizer, 0.5, 0.9, SPLIT, round_offset=1, **TWO_NODES)
    saved = {k: v.numpy() for k, v in load_server_state(path).items()}
    resumed.restore_server_state(saved, str(path))
    again = step(resumed, 1, ArrayRecord(shared), run_round=2)
    restarted = server_strategy(optimizer, 0.5, 0.9, SPLIT, round_offset=1, **TWO_NODES)
    fresh = step(restarted, 1, ArrayRecord(shared), run_round=2)
    for key in SHARED:
        np.testing.assert_allclose(again[key].numpy(), target[key].numpy(), rtol=1e-6)
    assert not all(np.allclose(fresh[k].numpy(), target[k].numpy()) for k in SHARED)
    with pytest.raises(ValueError, match="round-0001"):
        resumed.restore_server_state(
            {"m_t/other": np.zeros(1), "momentum/x": np.zeros(1)}, str(path)
        )

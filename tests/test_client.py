import pytest
import torch
from flwr.app import ArrayRecord, MessageType

from client.client_app import evaluate, train
from client.state import STATE_KEY
from common.model import create_model
from common.optimizer_state import split_moments
from common.run_folder import (
    RunFolder,
    read_state_file,
    read_state_versions,
    write_state_file,
)
from common.split import KeySplit
from tests.helpers import TEST_RUN, make_context, server_message, tiny_config

ROUND_CONFIG = {"lr": 1e-3, "aux-lr": 1e-3, "lmbda": 0.01, "local-steps": 2}


def initial_arrays(conf):
    model = create_model(conf.model, seed=conf.seed)
    split = KeySplit.from_keys(model.state_dict(), conf.strategy.shared_prefixes)
    return split, ArrayRecord(split.shared_state(model.state_dict()))


def without(record, keys):
    """A metric record as a dict, less some keys (timings differ between calls)."""
    return {k: v for k, v in dict(record).items() if k not in keys}


def personal_from_context(context):
    return context.state.array_records[STATE_KEY].to_torch_state_dict()


def test_train_twice_keeps_and_updates_personal_state(tmp_path):
    conf = tiny_config(tmp_path)
    split, arrays = initial_arrays(conf)
    context = make_context(conf, client_id=1)

    reply = train(server_message(arrays, {**ROUND_CONFIG, "server-round": 1}, node_id=101), context)
    assert not reply.has_error()
    first = {k: v.clone() for k, v in personal_from_context(context).items()}
    weights, moments = split_moments(first)
    assert set(weights) == split.personal
    assert moments, "the personal parameters' Adam moments are kept with them"
    state_file = RunFolder(tmp_path / "run").client_state_file(conf, 1, run_uid=TEST_RUN)
    assert state_file.parent == tmp_path / "run" / "client-state" / "client-1"
    assert state_file.exists()

    reply2 = train(
        server_message(arrays, {**ROUND_CONFIG, "server-round": 2}, node_id=101), context
    )
    second = personal_from_context(context)
    quantiles = "entropy_bottleneck.quantiles"
    assert not torch.equal(first[quantiles], second[quantiles]), "personal state was not updated"
    # round 2 started from round 1's personal state, not from a fresh model
    fresh = create_model(conf.model, seed=conf.seed).state_dict()
    assert not torch.equal(
        second["entropy_bottleneck.matrices.0"], fresh["entropy_bottleneck.matrices.0"]
    )
    saved = torch.load(state_file, weights_only=True)
    assert saved["round"] == 2
    assert torch.equal(saved["state"][quantiles], second[quantiles])
    assert reply2.content["metrics"]["num-examples"] == conf.data.train_size
    assert reply.content["metrics"]["state-round"] == 0  # first round: fresh entropy model
    assert reply2.content["metrics"]["state-round"] == 1  # continued from round 1


@pytest.mark.parametrize("method", ["personalized", "fedavg", "local"])
def test_reply_carries_exactly_the_shared_keys(tmp_path, method):
    conf = tiny_config(tmp_path, method=method)
    split, arrays = initial_arrays(conf)
    reply = train(server_message(arrays, ROUND_CONFIG), make_context(conf, 0))
    sent = set(reply.content["arrays"].keys())
    assert sent == split.shared
    assert sent.isdisjoint(split.personal)
    assert not any(k.startswith("entropy_bottleneck") for k in sent) or method == "fedavg"
    assert "num-examples" in reply.content["metrics"]


def test_restarted_client_reloads_state_from_disk(tmp_path):
    conf = tiny_config(tmp_path)
    _, arrays = initial_arrays(conf)
    first = make_context(conf, 2)
    train(server_message(arrays, {**ROUND_CONFIG, "server-round": 1}), first)

    restarted = make_context(conf, 2)  # a new SuperNode process: empty context.state
    reply = evaluate(server_message(arrays, {}, MessageType.EVALUATE), restarted)
    in_memory = evaluate(server_message(arrays, {}, MessageType.EVALUATE), first)
    fresh_conf = tiny_config(tmp_path / "other", state_dir=str(tmp_path / "other-state"))
    fresh = evaluate(server_message(arrays, {}, MessageType.EVALUATE), make_context(fresh_conf, 2))
    again = train(
        server_message(arrays, {**ROUND_CONFIG, "server-round": 2}), make_context(conf, 2)
    )
    assert again.content["metrics"]["state-round"] == 1
    # the reloaded entropy model codes exactly as the one kept in memory, unlike a fresh one
    # (estimated bpp: the tiny test images give the same whole-file size either way)
    metrics = {
        name: r.content["metrics"]
        for name, r in [("disk", reply), ("memory", in_memory), ("fresh", fresh)]
    }
    timing = {"evaluate-seconds"}
    assert without(metrics["disk"], timing) == without(metrics["memory"], timing)
    assert metrics["disk"]["est_bpp"] != metrics["fresh"]["est_bpp"]
    assert not any("personal" in key for key in reply.content["metrics"])


def test_another_run_in_the_same_state_dir_starts_fresh(tmp_path):
    """The same config run again (as with compose's /state volume) is another run."""
    conf = tiny_config(tmp_path, state_dir=str(tmp_path / "node-state"))
    _, arrays = initial_arrays(conf)
    train(server_message(arrays, {**ROUND_CONFIG, "server-round": 1}), make_context(conf, 0))
    again = {**ROUND_CONFIG, "server-round": 2}
    reply = train(server_message(arrays, {**again, "run-uid": "new-run"}), make_context(conf, 0))
    assert reply.content["metrics"]["state-round"] == 0
    reply = train(server_message(arrays, again), make_context(conf, 0))  # the first run goes on
    assert reply.content["metrics"]["state-round"] == 1
    files = sorted((tmp_path / "node-state" / "client-0").glob("personal-*.pt"))
    assert [f.name for f in files] == ["personal-new-run.pt", f"personal-{TEST_RUN}.pt"]


def test_a_resumed_round_trains_from_the_state_that_matches_its_checkpoint(tmp_path):
    """The server crashed in round 3 after this client had saved its round-3 state, and
    resumed from the round-2 checkpoint: round 3 again starts from the round-2 state."""
    conf = tiny_config(tmp_path)
    _, arrays = initial_arrays(conf)
    for r in (1, 2, 3):
        train(server_message(arrays, {**ROUND_CONFIG, "server-round": r}), make_context(conf, 0))
    state_file = RunFolder(tmp_path / "run").client_state_file(conf, 0, run_uid=TEST_RUN)
    _, versions = read_state_versions(state_file, conf.model)
    assert [r for r, _ in versions] == [3, 2]
    redo = server_message(arrays, {**ROUND_CONFIG, "server-round": 3})
    assert train(redo, make_context(conf, 0)).content["metrics"]["state-round"] == 2
    # a server that rolled back further than the kept versions gets a fresh start, logged
    _, versions = read_state_versions(state_file, conf.model)
    assert [r for r, _ in versions] == [3, 2]
    first = server_message(arrays, {**ROUND_CONFIG, "server-round": 1})
    assert train(first, make_context(conf, 0)).content["metrics"]["state-round"] == 0


def test_a_message_without_the_run_identity_is_refused(tmp_path):
    conf = tiny_config(tmp_path)
    _, arrays = initial_arrays(conf)
    message = server_message(arrays, ROUND_CONFIG)
    del message.content["config"]["run-uid"]
    with pytest.raises(ValueError, match="run-uid"):
        train(message, make_context(conf, 0))


def test_state_file_of_another_model_is_refused(tmp_path):
    conf = tiny_config(tmp_path)
    path = tmp_path / "personal.pt"
    write_state_file(path, {"x": torch.zeros(1)}, conf.model, 1)
    bigger = tiny_config(tmp_path)
    bigger.model.N = 16
    with pytest.raises(ValueError, match="personal.pt"):
        read_state_file(path, bigger.model)


def test_message_with_personal_keys_is_refused(tmp_path):
    conf = tiny_config(tmp_path)
    model = create_model(conf.model)
    everything = ArrayRecord({k: v for k, v in model.state_dict().items()})
    with pytest.raises(ValueError, match="entropy_bottleneck"):
        train(server_message(everything, ROUND_CONFIG), make_context(conf, 0))


def test_evaluate_reports_real_coding_metrics(tmp_path):
    conf = tiny_config(tmp_path)
    _, arrays = initial_arrays(conf)
    context = make_context(conf, 0)
    train(server_message(arrays, ROUND_CONFIG), context)
    reply = evaluate(server_message(arrays, {}, MessageType.EVALUATE), context)
    m = reply.content["metrics"]
    assert m["num-examples"] == conf.data.test_size
    assert m["real_bpp"] > 0 and m["est_bpp"] > 0 and 0 < m["psnr"] < 100
    assert m["num_pixels"] == conf.data.test_size * 32 * 32


@pytest.mark.parametrize(
    ("node_config", "match"),
    [
        ({"data_dir": "/x"}, "data_dir"),
        ({"partition-id": "zero"}, "partition-id"),
        ({"num-partitions": 7}, "num-partitions=7"),
        ({"data-dir": "/x"}, "data.source=folder"),
        ({"device": "tpu"}, "node-config device"),
    ],
)
def test_bad_node_config_is_named(tmp_path, node_config, match):
    conf = tiny_config(tmp_path)
    _, arrays = initial_arrays(conf)
    with pytest.raises(ValueError, match=match):
        train(server_message(arrays, ROUND_CONFIG), make_context(conf, 0, **node_config))


def test_hyperprior_trains_with_a_personal_hyperprior(tmp_path):
    conf = tiny_config(tmp_path)
    conf.model.name = "bmshj2018-hyperprior"
    conf.data.image_size = conf.data.crop_size = 64  # the hyperprior downsamples by 64
    split, arrays = initial_arrays(conf)
    context = make_context(conf, 0)
    reply = train(server_message(arrays, {**ROUND_CONFIG, "server-round": 1}), context)
    assert set(reply.content["arrays"].keys()) == split.shared
    personal = personal_from_context(context)
    assert any(k.startswith("h_a.") for k in personal) and any(
        k.startswith("h_s.") for k in personal
    )
    metrics = evaluate(server_message(arrays, {}, MessageType.EVALUATE), context).content["metrics"]
    # an untrained hyperprior spends almost nothing; per-string overhead dominates real bpp
    assert metrics["real_bpp"] >= metrics["est_bpp"] > 0 and 0 < metrics["psnr"] < 100


def test_node_config_threads_sets_torch_threads_and_is_checked(tmp_path):
    conf = tiny_config(tmp_path)
    _, arrays = initial_arrays(conf)
    before = torch.get_num_threads()
    try:
        train(server_message(arrays, ROUND_CONFIG), make_context(conf, 0, threads=1))
        assert torch.get_num_threads() == 1
        with pytest.raises(ValueError, match="'threads' must be >= 1"):
            train(server_message(arrays, ROUND_CONFIG), make_context(conf, 0, threads=0))
    finally:
        torch.set_num_threads(before)


def test_a_process_that_served_a_message_before_replies_exactly_like_a_fresh_one(
    tmp_path, monkeypatch
):
    """Config, data and starting model are kept per process (client.memo): the replies of
    a second run in the same process match a fresh process's bit for bit, and the data is
    decoded once per client, not once per message."""
    import client.memo as memo

    decoded = []
    load = memo.load_client_data
    monkeypatch.setattr(
        memo, "load_client_data", lambda *a, **k: decoded.append(a[1]) or load(*a, **k)
    )

    def two_rounds(folder):
        conf = tiny_config(folder)
        _, arrays = initial_arrays(conf)
        context = make_context(conf, client_id=1)
        replies = []
        for server_round in (1, 2):
            message = server_message(
                arrays, {**ROUND_CONFIG, "server-round": server_round}, node_id=101
            )
            replies.append(train(message, context).content["arrays"].to_torch_state_dict())
            evaluated = evaluate(
                server_message(arrays, {"server-round": server_round}, MessageType.EVALUATE, 101),
                context,
            )
            replies.append(dict(evaluated.content["metrics"]))
        return replies

    fresh = two_rounds(tmp_path / "a")
    assert decoded == [1]  # four messages, one decoding
    memo.clear()
    fresh_again = two_rounds(tmp_path / "b")
    warm = two_rounds(tmp_path / "c")  # same process, everything already cached
    assert decoded == [1, 1]
    for a, b, c in zip(fresh, fresh_again, warm, strict=True):
        if "evaluate-seconds" in a:
            timing = {"evaluate-seconds"}
            assert without(a, timing) == without(b, timing) == without(c, timing)
        else:
            assert a.keys() == c.keys()
            assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)

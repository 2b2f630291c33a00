"""The round protocol: entropy-model refit on received transforms, persistent Adam moments,
and the fedavg + refit baseline."""

import dataclasses

import pytest
import torch
from flwr.app import ArrayRecord, MessageType

from client.client_app import evaluate, train
from client.state import STATE_KEY
from common.model import create_model
from common.optimizer_state import export_moments, restore_moments, split_moments
from common.refit import entropy_model_keys, refit_entropy_model
from common.run_folder import RunFolder, read_state_versions
from common.split import KeySplit, fingerprint
from common.train import make_optimizers, train_steps
from tests.helpers import TEST_RUN, make_context, server_message, tiny_config

ROUND = {"lr": 1e-3, "aux-lr": 1e-3, "lmbda": 0.01, "local-steps": 3}


def batches(seed, count=8):
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(4, 3, 32, 32, generator=generator) for _ in range(count)]


def transforms_hash(model):
    return fingerprint({k: v for k, v in model.state_dict().items() if k.startswith("g_")})


def test_restored_moments_continue_adam_exactly(tmp_path):
    conf = tiny_config(tmp_path).train
    data = batches(0)
    straight = create_model(tiny_config(tmp_path).model, seed=0)
    torch.manual_seed(7)  # the training noise comes from the global generator
    train_steps(straight, iter(data), dataclasses.replace(conf, local_steps=4), torch.device("cpu"))

    def two_then_two(restore: bool) -> torch.nn.Module:
        first = create_model(tiny_config(tmp_path).model, seed=0)
        optimizers = make_optimizers(first, conf)
        two = dataclasses.replace(conf, local_steps=2)
        torch.manual_seed(7)
        train_steps(first, iter(data[:2]), two, torch.device("cpu"), optimizers=optimizers)
        noise = torch.get_rng_state()
        names = [n for n, _ in first.named_parameters()]
        moments = export_moments(first, optimizers, names)
        second = create_model(tiny_config(tmp_path).model, seed=1)
        second.load_state_dict(first.state_dict())
        fresh = make_optimizers(second, conf)
        if restore:
            assert restore_moments(second, fresh, moments, "test") == len(names)
        torch.set_rng_state(noise)
        train_steps(second, iter(data[2:4]), two, torch.device("cpu"), optimizers=fresh)
        return second

    target = straight.state_dict()
    resumed, restarted = two_then_two(True).state_dict(), two_then_two(False).state_dict()
    assert all(torch.equal(resumed[k], target[k]) for k in target)
    assert not all(torch.equal(restarted[k], target[k]) for k in target)


def test_moments_of_another_model_are_refused(tmp_path):
    model = create_model(tiny_config(tmp_path).model, seed=0)
    optimizers = make_optimizers(model, tiny_config(tmp_path).train)
    bad = {"adam/net/g_a.0.weight/exp_avg": torch.zeros(1)}
    with pytest.raises(ValueError, match="g_a.0.weight"):
        restore_moments(
            model, optimizers, {**bad, "adam/net/g_a.0.weight/step": torch.ones(())}, "f"
        )


def test_moments_round_trip_through_context_and_file_and_a_restarted_client(tmp_path):
    conf = tiny_config(tmp_path)
    model = create_model(conf.model, seed=conf.seed)
    split = KeySplit.from_keys(model.state_dict(), conf.strategy.shared_prefixes)
    arrays = ArrayRecord(split.shared_state(model.state_dict()))
    context = make_context(conf, client_id=1)
    train(server_message(arrays, {**ROUND, "server-round": 1}), context)
    in_memory = split_moments(context.state.array_records[STATE_KEY].to_torch_state_dict())[1]
    state_file = RunFolder(tmp_path / "run").client_state_file(conf, 1, run_uid=TEST_RUN)
    _, [(round_, on_disk)] = read_state_versions(state_file, conf.model)
    on_disk = split_moments(on_disk)[1]
    assert round_ == 1 and set(on_disk) == set(in_memory)
    assert all(torch.equal(on_disk[k], in_memory[k]) for k in in_memory)
    named = {k.split("/")[2] for k in in_memory}
    assert named == {n for n, _ in model.named_parameters()} & split.personal  # personal only
    steps = {float(v) for k, v in in_memory.items() if k.endswith("/step")}
    assert steps == {ROUND["local-steps"]}

    round2 = server_message(arrays, {**ROUND, "server-round": 2})
    kept = train(round2, context)
    restarted = train(round2, make_context(conf, client_id=1))  # empty context.state
    kept, restarted = (r.content["arrays"].to_torch_state_dict() for r in (kept, restarted))
    assert all(torch.equal(kept[k], restarted[k]) for k in split.shared)  # the same steps
    _, [(_, latest), _] = read_state_versions(state_file, conf.model)
    steps = {float(v) for k, v in split_moments(latest)[1].items() if k.endswith("/step")}
    assert steps == {2 * ROUND["local-steps"]}


def test_without_keep_optimizer_state_no_moments_are_saved(tmp_path):
    conf = tiny_config(tmp_path)
    conf.strategy.keep_optimizer_state = False
    model = create_model(conf.model, seed=conf.seed)
    split = KeySplit.from_keys(model.state_dict(), conf.strategy.shared_prefixes)
    context = make_context(conf, client_id=0)
    train(server_message(ArrayRecord(split.shared_state(model.state_dict())), ROUND), context)
    saved = context.state.array_records[STATE_KEY].to_torch_state_dict()
    assert not split_moments(saved)[1]


def test_refit_keeps_the_transforms_and_fits_the_entropy_model_to_them(tmp_path):
    conf = tiny_config(tmp_path)
    model = create_model(conf.model, seed=0)
    split = KeySplit.from_keys(model.state_dict(), conf.strategy.shared_prefixes)
    keys = entropy_model_keys(model, split, "personalized")
    assert keys and all(k.startswith("entropy_bottleneck") for k in keys)
    before_transforms = transforms_hash(model)
    before = {k: v.clone() for k, v in model.state_dict().items() if k in keys}
    refit_entropy_model(model, iter(batches(1)), conf.train, torch.device("cpu"), keys, 5)
    assert transforms_hash(model) == before_transforms
    assert any(not torch.equal(model.state_dict()[k], before[k]) for k in keys)
    assert all(p.requires_grad for p in model.parameters())  # unfrozen afterwards


def test_refit_on_received_transforms_does_not_raise_the_coded_rate(tmp_path):
    """A client whose entropy model was trained against its own g_a evaluates the transforms
    another client trained: with the refit its rate is lower, its transforms unchanged."""
    conf = tiny_config(tmp_path)
    model = create_model(conf.model, seed=conf.seed)
    split = KeySplit.from_keys(model.state_dict(), conf.strategy.shared_prefixes)
    start = ArrayRecord(split.shared_state(model.state_dict()))
    steps = {**ROUND, "lr": 5e-3, "local-steps": 30}
    train(server_message(start, {**steps, "server-round": 1}), make_context(conf, 0))
    other = train(server_message(start, {**steps, "server-round": 1}), make_context(conf, 1))
    received = other.content["arrays"]  # transforms client 0 never trained with
    results = {}
    for refit_steps in (0, 40):
        conf.strategy.refit_steps = refit_steps
        msg = server_message(received, {}, MessageType.EVALUATE)
        results[refit_steps] = evaluate(msg, make_context(conf, 0)).content["metrics"]
    assert (
        results[40]["shared-hash"]
        == results[0]["shared-hash"]
        == fingerprint(received.to_torch_state_dict())
    )
    assert results[40]["est_bpp"] < results[0]["est_bpp"]
    assert results[40]["real_bpp"] <= results[0]["real_bpp"]
    assert results[40]["psnr"] == pytest.approx(results[0]["psnr"], abs=0.5)


def test_fedavg_refit_trains_as_fedavg_and_refits_only_to_evaluate(tmp_path):
    replies = {}
    for method in ("fedavg", "fedavg_refit"):
        conf = tiny_config(tmp_path / method, method=method)
        conf.strategy.refit_steps = 20
        model = create_model(conf.model, seed=conf.seed)
        split = KeySplit.from_keys(model.state_dict(), conf.strategy.shared_prefixes)
        arrays = ArrayRecord(split.shared_state(model.state_dict()))
        trained = train(server_message(arrays, ROUND), make_context(conf, 0)).content["arrays"]
        msg = server_message(trained, {}, MessageType.EVALUATE)
        replies[method] = (trained, evaluate(msg, make_context(conf, 0)).content["metrics"])
    (plain, plain_eval), (refit, refit_eval) = replies["fedavg"], replies["fedavg_refit"]
    plain, refit = plain.to_torch_state_dict(), refit.to_torch_state_dict()
    assert all(torch.equal(plain[k], refit[k]) for k in plain)
    assert refit_eval["shared-hash"] == plain_eval["shared-hash"]
    assert refit_eval["est_bpp"] != plain_eval["est_bpp"]

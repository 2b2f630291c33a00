"""Starting points (model.init): every method starts from the same weights; zoo offline;
files of another size fail naming the keys."""

import dataclasses

import pytest
import torch
from compressai.zoo import image as zoo
from flwr.app import ArrayRecord

from client.client_app import ClientSetup, build_model
from common.config import ConfigError, ModelConfig
from common.init import initial_model, save_base
from common.model import create_model
from common.split import KeySplit
from tests.helpers import make_context, server_message, tiny_config


def base_file(tmp_path, conf: ModelConfig, seed: int = 7):
    """A base model file of ``conf``'s size with weights unlike any seeded init."""
    model = create_model(conf, seed=seed)
    path = tmp_path / "base.pt"
    save_base(model.state_dict(), {"name": conf.name, "N": conf.N, "M": conf.M}, path)
    return path


def test_every_method_starts_from_the_same_weights(tmp_path):
    path = base_file(tmp_path, ModelConfig(N=8, M=12))
    states = {}
    for method in ("personalized", "fedavg", "local"):
        conf = tiny_config(tmp_path / method, method=method)
        conf.model.init = str(path)
        server_model = initial_model(conf.model, seed=conf.seed)  # what the ServerApp sends
        split = KeySplit.from_keys(server_model.state_dict(), conf.strategy.shared_prefixes)
        message = server_message(ArrayRecord(split.shared_state(server_model.state_dict())), {})
        context = make_context(conf, client_id=0)
        setup = ClientSetup.from_context(context)
        built = build_model(setup, message, context, before_round=1)
        model, (state_round, _) = built.model, built.version
        assert state_round == 0  # no personal state yet: the entropy model is the base's
        states[method] = model.state_dict()
    saved = torch.load(path, weights_only=True)["state_dict"]
    for method, state in states.items():
        for key, value in saved.items():
            assert torch.equal(state[key], value.float() if value.is_floating_point() else value), (
                method,
                key,
            )
    scratch = create_model(ModelConfig(N=8, M=12), seed=0).state_dict()
    assert not torch.equal(states["local"]["g_a.0.weight"], scratch["g_a.0.weight"])


def test_zoo_model_loads_offline_from_the_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = zoo.model_urls["bmshj2018-factorized"]["mse"][1]
    written = create_model(ModelConfig(N=128, M=192), seed=3).state_dict()
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(written, cache / url.rsplit("/", 1)[-1])
    model = initial_model(ModelConfig(init="zoo", quality=1, N=32, M=48))  # N, M follow quality
    assert model.g_a[0].weight.shape[0] == 128
    assert torch.equal(model.state_dict()["g_s.0.weight"], written["g_s.0.weight"])


def test_missing_zoo_file_fails_naming_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for proxy in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")  # refused at once: no network
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with pytest.raises(ConfigError) as err:
        initial_model(ModelConfig(init="zoo", quality=2))
    message = str(err.value)
    assert "bmshj2018-factorized-prior-2-87279a02.pth.tar" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in message


def test_file_of_another_size_fails_naming_the_keys(tmp_path):
    path = base_file(tmp_path, ModelConfig(N=8, M=16))
    with pytest.raises(
        ConfigError,
        match=r"entropy_bottleneck\.biases\.0 \(16, 3, 1\) \(model: \(12, 3, 1\)\).*model\.N",
    ):
        initial_model(ModelConfig(N=8, M=12, init=str(path)))


def test_missing_init_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nothing.pt"):
        initial_model(dataclasses.replace(ModelConfig(), init=str(tmp_path / "nothing.pt")))


def test_base_is_the_shipped_model_nearest_the_runs_lambda(tmp_path, monkeypatch):
    import common.init

    monkeypatch.setattr(common.init, "MODELS_DIR", tmp_path)
    conf = ModelConfig(N=8, M=12, init="base")
    trained = {}
    for seed, lmbda in enumerate((0.001, 0.01)):
        path = base_file(tmp_path, conf, seed=seed)
        trained[lmbda] = path.rename(tmp_path / f"bmshj2018-factorized-N8-M12-l{lmbda}.pt")
    base_file(tmp_path, ModelConfig(N=8, M=16), seed=5).rename(
        tmp_path / "bmshj2018-factorized-N8-M16-l0.002.pt"  # another size: never picked
    )
    for lmbda, expected in ((0.0005, 0.001), (0.002, 0.001), (0.005, 0.01), (0.1, 0.01)):
        model = initial_model(conf, seed=0, lmbda=lmbda)
        saved = torch.load(trained[expected], weights_only=True)["state_dict"]
        assert torch.equal(model.state_dict()["g_a.0.weight"], saved["g_a.0.weight"].float())
    with pytest.raises(ConfigError, match=r"no shipped base model bmshj2018-factorized-N8-M20"):
        initial_model(ModelConfig(N=8, M=20, init="base"), lmbda=0.001)


def test_a_base_file_keeps_the_models_constants_so_no_likelihood_is_zero(tmp_path):
    """Base files stored every float in fp16 once, which turned the likelihood lower bound
    (1e-9) and the GDN pedestals to 0; a likelihood of exactly 0 then made the training
    loss infinite. Loading uses the model's own constants, and new files keep them."""
    conf = ModelConfig(N=8, M=12)
    model = create_model(conf, seed=1)
    bound = "entropy_bottleneck.likelihood_lower_bound.bound"
    assert model.state_dict()[bound].item() == pytest.approx(1e-9)
    old = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    assert old[bound].item() == 0.0  # what an fp16 file held
    path = tmp_path / "old.pt"
    torch.save({"format": "fedntc-base-1", "meta": {}, "state_dict": old}, path)
    loaded = initial_model(dataclasses.replace(conf, init=str(path)))
    assert loaded.state_dict()[bound].item() == pytest.approx(1e-9)
    assert loaded.state_dict()["g_a.1.beta_reparam.pedestal"].item() > 0
    with torch.no_grad():  # a latent far in the tail still has a positive likelihood
        _, likelihood = loaded.entropy_bottleneck(torch.full((1, 12, 2, 2), 1e4))
    assert likelihood.min().item() > 0
    path = base_file(tmp_path, conf)
    stored = torch.load(path, weights_only=True)["state_dict"]
    assert stored[bound].dtype == torch.float32 and stored[bound].item() == pytest.approx(1e-9)
    assert stored["g_a.6.weight"].dtype == torch.float16  # the weights stay half size

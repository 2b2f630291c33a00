"""The low-dimensional distributed source and the vector NTC model (Part 1 of the study)."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

from common.config import ConfigError, DataConfig, ModelConfig, RunConfig, TrainConfig
from common.data import client_batches, load_client_data
from common.data.vectors import (
    client_law,
    client_vectors,
    entropy_bits,
    shannon_lower_bound,
    shared_map,
)
from common.evaluate import evaluate_vectors
from common.model import create_model
from common.split import KeySplit
from common.train import train_steps

DATA = DataConfig(source="vectors", latent_dim=2, train_size=256, test_size=2048, batch_size=64)
MODEL = ModelConfig(name="fedntc-vector", N=32, M=2, input_dim=2)


@pytest.mark.parametrize("dim", [2, 3])
def test_shared_map_preserves_volume(dim):
    points = torch.randn(5, dim, dtype=torch.float64) * 2
    for u in points:
        jac = jacobian(lambda v: shared_map(v[None], source_seed=0)[0], u)
        assert abs(torch.linalg.det(jac).item()) == pytest.approx(1.0, abs=1e-9)
        assert not torch.allclose(jac, jac[0, 0] * torch.eye(dim, dtype=torch.float64))


def test_entropy_formula_matches_monte_carlo():
    """h(u) = E[-log2 p(u)] under each client's Laplace law equals the closed form."""
    for client in range(3):
        mu, scale = client_law(client, 2, 1.5, source_seed=0)
        u = torch.distributions.Laplace(mu, scale).sample((200_000,))
        density = torch.distributions.Laplace(mu, scale).log_prob(u).sum(1)
        estimate = (-density / math.log(2)).mean().item()
        assert estimate == pytest.approx(entropy_bits(client, 2, 1.5, 0), abs=0.02)


def test_heterogeneity_zero_gives_identical_clients():
    same = [client_law(k, 2, 0.0, source_seed=0) for k in range(3)]
    assert all(torch.equal(same[0][0], s[0]) and torch.equal(same[0][1], s[1]) for s in same)
    apart = [client_law(k, 2, 1.0, source_seed=0) for k in range(3)]
    assert not torch.equal(apart[0][0], apart[1][0])


def test_samples_are_seeded_and_splits_differ():
    kwargs = dict(dim=2, heterogeneity=1.0, source_seed=0, seed=3)
    train = torch.stack(client_vectors(1, 64, split="train", **kwargs))
    assert torch.equal(train, torch.stack(client_vectors(1, 64, split="train", **kwargs)))
    assert not torch.equal(train, torch.stack(client_vectors(1, 64, split="test", **kwargs)))
    assert train.dtype == torch.float32 and train.shape == (64, 2)


def test_shannon_lower_bound_shape():
    h = 4.0
    rates = [shannon_lower_bound(h, 2, mse) for mse in (1e-4, 1e-3, 1e-2, 1e-1, 10.0)]
    assert rates == sorted(rates, reverse=True) and rates[-1] == 0.0
    # 10x less MSE costs dim/2 * log2(10) more bits per vector
    step = shannon_lower_bound(h, 2, 1e-4) - shannon_lower_bound(h, 2, 1e-3)
    assert step == pytest.approx(math.log2(10))


def test_config_ties_vector_source_and_model():
    with pytest.raises(ConfigError, match="model.name"):
        RunConfig(data=DATA)  # image model with the vector source
    with pytest.raises(ConfigError, match="model.input_dim"):
        RunConfig(data=DATA, model=ModelConfig(name="fedntc-vector", input_dim=3))
    RunConfig(data=DATA, model=MODEL)


def test_vector_model_split_and_training_batches():
    model = create_model(MODEL, seed=0)
    split = KeySplit.from_keys(model.state_dict(), ["g_a", "g_s"])
    assert {k.split(".")[0] for k in split.shared} == {"g_a", "g_s"}
    assert all(k.startswith("entropy_bottleneck") for k in split.personal)
    data = load_client_data(DATA, 0, seed=0)
    assert data.kind == "vectors" and len(data.test) == DATA.test_size
    batch = next(client_batches(data, DATA, seed=0))
    assert batch.shape == (64, 2, 1, 1)


def test_trained_vector_codec_is_real_and_respects_the_bound():
    """After a short training: one bitstream codes all test vectors, its size matches the
    model's likelihoods, and no client beats its Shannon lower bound."""
    torch.manual_seed(0)
    data = load_client_data(DATA, 2, seed=0)
    model = create_model(MODEL, seed=0)
    conf = TrainConfig(lmbda=3e-4, lr=3e-3, local_steps=300)
    stats = train_steps(model, client_batches(data, DATA, seed=0), conf, torch.device("cpu"))
    assert math.isfinite(stats["loss"])
    result = evaluate_vectors(model, data.test)
    assert result["real_bpp"] == pytest.approx(result["est_bpp"], rel=0.05)
    mse = 10 ** (-result["psnr"] / 10)
    assert mse < 0.5  # it learned something (data variance is O(1) per dimension)
    bound = shannon_lower_bound(entropy_bits(2, 2, 1.0, 0), 2, mse)
    assert bound > 0 and result["real_bpp"] > bound
    assert math.isnan(result["ms_ssim"])

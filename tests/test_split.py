import pytest
import torch

from common.config import ConfigError, ModelConfig
from common.model import create_model
from common.split import KeySplit, fingerprint, is_coding_table, merge_state

FACTORIZED = ModelConfig(name="bmshj2018-factorized", N=8, M=12)
HYPERPRIOR = ModelConfig(name="bmshj2018-hyperprior", N=8, M=12)


def keys(conf):
    return list(create_model(conf).state_dict())


def test_personalized_split_shares_only_transforms():
    all_keys = keys(HYPERPRIOR)
    split = KeySplit.from_keys(all_keys, ["g_a", "g_s"])
    assert split.shared and all(k.startswith(("g_a.", "g_s.")) for k in split.shared)
    assert {k.split(".")[0] for k in split.personal} == {
        "h_a",
        "h_s",
        "entropy_bottleneck",
        "gaussian_conditional",
    }
    assert split.shared.isdisjoint(split.personal)
    assert split.shared | split.personal == set(all_keys)


def test_fedavg_shares_everything_but_coding_tables():
    all_keys = keys(HYPERPRIOR)
    split = KeySplit.from_keys(all_keys, ["*"])
    assert split.personal == {k for k in all_keys if is_coding_table(k)}
    assert "gaussian_conditional.scale_table" in split.personal
    assert "entropy_bottleneck._quantized_cdf" in split.personal
    assert "entropy_bottleneck.quantiles" in split.shared


def test_local_shares_nothing():
    split = KeySplit.from_keys(keys(FACTORIZED), [])
    assert not split.shared


def test_prefix_is_a_module_name_not_a_substring():
    # "g" is a prefix of "g_a" as a string, but not a module of the model.
    with pytest.raises(ConfigError, match="not modules of the model"):
        KeySplit.from_keys(keys(FACTORIZED), ["g"])
    with pytest.raises(ConfigError, match="h_a"):
        KeySplit.from_keys(keys(FACTORIZED), ["g_a", "h_a"])


def test_check_shared_keys_names_leaked_personal_key():
    split = KeySplit.from_keys(keys(FACTORIZED), ["g_a", "g_s"])
    leaked = set(split.shared) | {"entropy_bottleneck.quantiles"}
    with pytest.raises(ValueError, match="entropy_bottleneck.quantiles"):
        split.check_shared_keys(leaked, origin="reply")
    split.check_shared_keys(set(split.shared), origin="reply")


def test_personal_state_restores_after_update_resized_tables():
    """Coding tables change shape after update(); load_state_dict must resize them."""
    trained = create_model(FACTORIZED, seed=1)
    trained.update(force=True)
    split = KeySplit.from_keys(trained.state_dict(), ["g_a", "g_s"])
    personal = split.personal_state(trained.state_dict())
    assert personal["entropy_bottleneck._quantized_cdf"].numel() > 0

    fresh = create_model(FACTORIZED, seed=2)
    shared = split.shared_state(fresh.state_dict())
    fresh.load_state_dict(merge_state(fresh.state_dict(), personal, shared))
    restored = fresh.state_dict()
    for key, value in personal.items():
        assert torch.equal(restored[key], value), key
    assert fingerprint(split.shared_state(restored)) == fingerprint(shared)


def test_fingerprint_changes_with_values():
    state = create_model(FACTORIZED, seed=0).state_dict()
    other = dict(state)
    other["g_a.0.bias"] = state["g_a.0.bias"] + 1e-3
    assert fingerprint(state) != fingerprint(other)
    assert fingerprint(state) == fingerprint(dict(reversed(list(state.items()))))
    assert fingerprint(state) < 2**53

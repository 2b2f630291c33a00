"""Sweep job folders stay within the file system's 255-byte name limit, named the same on
every rerun (what makes a fixed hydra.sweep.dir resumable)."""

from omegaconf import OmegaConf

from launch.job_dirname import NAME_MAX_BYTES, job_dirname, register_resolver

LONG = ",".join(
    [
        "data.clients_per_folder=2",
        "data.num_clients=8",
        "data.train_images=2",
        "data=fedimages",
        "model=base",
        "num_rounds=8",
        "seed=0",
        "strategy.evaluate_every=8",
        "strategy.min_clients=8",
        "strategy=personalized",
        "train.lmbda=0.0035",
        "train.local_steps=50",
        "train.precision=bf16",
        "train=finetune",
    ]
)


def test_a_name_within_the_limit_is_left_as_it_was():
    short = "seed=1,strategy=local,train.lmbda=0.0067"
    assert job_dirname(short) == short
    assert job_dirname("") == ""


def test_a_long_name_is_cut_at_an_override_and_ends_with_a_hash_of_the_whole():
    assert len(LONG.encode()) > NAME_MAX_BYTES  # the sweep that failed with "File name too long"
    name = job_dirname(LONG)
    assert len(name.encode()) <= NAME_MAX_BYTES
    assert name.startswith("data.clients_per_folder=2,data.num_clients=8,")
    head, _, digest = name.rpartition(",hash=")
    assert LONG.startswith(head + ",") and len(digest) == 16
    assert job_dirname(LONG) == name  # a rerun finds the same folder
    # two jobs differing only after the cut still get different folders
    other = LONG.replace("train=finetune", "train=default")
    assert job_dirname(other) != name


def test_multibyte_names_are_measured_in_bytes():
    name = job_dirname(",".join(f"data.root=/données/é{i}" for i in range(20)))
    assert len(name.encode()) <= NAME_MAX_BYTES


def test_the_config_resolver_passes_overrides_with_commas_and_equals_through():
    register_resolver()
    register_resolver()  # idempotent
    cfg = OmegaConf.create(
        {
            "job": {"override_dirname": LONG, "short": "seed=1,train.lmbda=0.01"},
            "subdir": "${fedntc_job_dir:${job.override_dirname}}",
            "short_subdir": "${fedntc_job_dir:${job.short}}",
        }
    )
    assert cfg.subdir == job_dirname(LONG)
    assert cfg.short_subdir == "seed=1,train.lmbda=0.01"

import pytest
import torch

from common.checkpoint import atomic_save, atomic_write_bytes, load_tensors


class Unsavable:
    def __reduce__(self):
        raise RuntimeError("cannot save this")


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state" / "personal.pt"
    atomic_save({"w": torch.ones(2)}, path)
    with pytest.raises(RuntimeError, match="cannot save"):
        atomic_save({"w": Unsavable()}, path)
    assert torch.equal(load_tensors(path)["w"], torch.ones(2))
    assert [p.name for p in path.parent.iterdir()] == ["personal.pt"]


def test_corrupt_state_file_is_named(tmp_path):
    path = tmp_path / "personal.pt"
    atomic_write_bytes(b"not a torch file", path)
    with pytest.raises(ValueError, match="personal.pt"):
        load_tensors(path)

"""The per-round displacement of the shared weights, read from real round checkpoints."""

import pytest
import torch

from common.run_folder import RunFolder
from study.round_displacement import displacements, main


def _run_with_steps(tmp_path, steps):
    folder = RunFolder(tmp_path)
    weights = {"g_a.w": torch.zeros(10), "g_s.w": torch.zeros(10)}
    folder.save_checkpoint(1, weights, "personalized")
    for r, step in enumerate(steps, start=2):
        weights = {k: v + step for k, v in weights.items()}
        folder.save_checkpoint(r, weights, "personalized")
    return folder


def test_displacements_are_the_moves_between_consecutive_rounds(tmp_path, capsys):
    _run_with_steps(tmp_path, [0.01, -0.0005])
    rows = displacements(tmp_path)
    assert [r["round"] for r in rows] == [2, 3]
    assert rows[0]["median"] == pytest.approx(0.01) and rows[0]["above_1e-3"] == 1.0
    assert rows[1]["median"] == pytest.approx(0.0005) and rows[1]["above_1e-3"] == 0.0
    main([str(tmp_path)])
    assert "| 3 | 5.00e-04 |" in capsys.readouterr().out


def test_a_missing_checkpoint_is_named(tmp_path):
    folder = _run_with_steps(tmp_path, [0.01, 0.01])
    folder.checkpoint_file(2).unlink()
    with pytest.raises(SystemExit, match="round-0002.pt"):
        displacements(tmp_path)


def test_the_rows_are_kept_as_csv(tmp_path):
    _run_with_steps(tmp_path / "run", [0.01, -0.0005])
    main([str(tmp_path / "run"), "--csv", str(tmp_path / "moves.csv")])
    lines = (tmp_path / "moves.csv").read_text().splitlines()
    assert lines[0] == "round,median,p90,above_1e-3" and lines[2].startswith("3,0.0005")

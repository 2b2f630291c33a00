"""How far a run's shared weights move per round, read from its round checkpoints.

A server optimizer's step is a function of the mean client update (``Δ``); whether
FedAdam's ``strategy.server_tau`` sits above or below ``|Δ|`` decides whether it acts as
sign-like Adam or as a damped FedAvg (docs/results.md, "The federated optimizer"). Usage::

    python -m study.round_displacement RUN_FOLDER [--csv FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from common.checkpoint import atomic_write_csv
from common.run_folder import RunFolder, load_shared_checkpoint


def displacements(run: Path) -> list[dict[str, float]]:
    """Per round r ≥ 2: the median, 90th percentile and share above 1e-3 of
    ``|w_r - w_(r-1)|`` over every shared coordinate (round 1 has no predecessor saved)."""
    folder = RunFolder(run)
    rounds = folder.rounds_done()
    if rounds < 2:
        raise SystemExit(f"{run}: needs checkpoints of 2 rounds or more, found {rounds}")
    missing = [
        f.name for r in range(1, rounds + 1) if not (f := folder.checkpoint_file(r)).is_file()
    ]
    if missing:
        raise SystemExit(f"{run / 'checkpoints'}: missing {', '.join(missing)}")
    rows = []
    before, _ = load_shared_checkpoint(folder.checkpoint_file(1))
    for r in range(2, rounds + 1):
        after, _ = load_shared_checkpoint(folder.checkpoint_file(r))
        delta = torch.cat([(after[k].float() - before[k].float()).abs().flatten() for k in after])
        rows.append(
            {
                "round": r,
                "median": delta.median().item(),
                "p90": delta.quantile(0.9).item(),
                "above_1e-3": (delta > 1e-3).float().mean().item(),
            }
        )
        before = after
    return rows


def main(argv: list[str] | None = None) -> None:
    """Print a run's per-round displacement of the shared weights as a Markdown table."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("run", type=Path, help="a run folder with checkpoints/round-NNNN.pt")
    parser.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    args = parser.parse_args(argv)
    rows = displacements(args.run)
    if args.csv:
        atomic_write_csv(rows, args.csv)
    print("| round | median abs(Δ) | 90th pct | share above 1e-3 |\n|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['round']} | {row['median']:.2e} | {row['p90']:.2e} | {row['above_1e-3']:.2f} |"
        )


if __name__ == "__main__":
    main()

"""Where a simulation's time goes: rounds against the compute on their critical path, and
the start-up and tear-down around them.

    python benchmarks/round_overhead.py                        # the vector run, 8 rounds
    python benchmarks/round_overhead.py model=base train=finetune   # the main job's setting
    python benchmarks/round_overhead.py --checkout /tmp/old    # another checkout's code

One ``fedntc-simulate`` run with the given overrides (default: ``model=vector data=vectors
train=vector num_rounds=8``), measured from its own records:

* **round**: wall time of each round after the first, between the ServerApp's round
  checkpoints;
* **critical path**: the least time the round's compute could take on this machine: each
  client's ``train-seconds`` plus ``evaluate-seconds``, packed onto the Ray actors that run
  at once (``ray_num_cpus / num_cpus_per_client``): the larger of the slowest client and
  the sum over the actors;
* **start-up**: launch to the first checkpoint, less round 1's critical path (Hydra, the
  SuperLink, the simulation process, Ray and each actor's imports); **tear-down**: the last
  checkpoint to the command's exit.

Everything is printed with the ratio round / critical path; ``--csv`` appends one row.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

VECTOR_RUN = ["model=vector", "data=vectors", "train=vector", "num_rounds=8"]


def checkpoint_times(run: Path) -> dict[int, float]:
    """Modification time of each round's checkpoint (written when the round ends)."""
    return {
        int(p.stem.split("-")[1]): p.stat().st_mtime for p in run.glob("checkpoints/round-*.pt")
    }


def client_seconds(run: Path) -> dict[int, dict[str, float]]:
    """Per round and client: train plus evaluate seconds as the clients measured them."""
    seconds: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for name, key in (("train.csv", "train-seconds"), ("evaluate.csv", "evaluate-seconds")):
        for row in csv.DictReader((run / name).open()):
            if row.get(key):
                seconds[int(row["round"])][row["client-id"]] += float(row[key])
    return seconds


def critical_path(costs: list[float], lanes: int) -> float:
    """Least makespan bound of ``costs`` on ``lanes`` parallel workers."""
    return max(max(costs), sum(costs) / lanes) if costs else 0.0


def actor_lanes(run: Path) -> int:
    """How many ClientApps the run's Ray executed at once."""
    import yaml

    hydra = yaml.safe_load((run / ".hydra" / "config.yaml").open())
    sim = hydra.get("simulation", {})
    cpus = int(sim.get("ray_num_cpus") or 0) or os.cpu_count() or 1
    return max(1, int(cpus // float(sim.get("num_cpus_per_client", 1))))


def measure(run: Path, launched: float, ended: float) -> dict[str, float]:
    """The figures of one finished run folder."""
    stamps = checkpoint_times(run)
    seconds = client_seconds(run)
    lanes = actor_lanes(run)
    paths = {r: critical_path(list(c.values()), lanes) for r, c in seconds.items()}
    later = [r for r in sorted(stamps) if r - 1 in stamps]
    round_wall = sum(stamps[r] - stamps[r - 1] for r in later) / len(later)
    path = sum(paths[r] for r in later) / len(later)
    first = min(stamps)
    return {
        "rounds": len(stamps),
        "actors": lanes,
        "round_s": round(round_wall, 3),
        "critical_path_s": round(path, 3),
        "round_over_critical_path": round(round_wall / path, 2),
        "startup_s": round(stamps[first] - launched - paths[first], 1),
        "teardown_s": round(ended - stamps[max(stamps)], 1),
        "wall_s": round(ended - launched, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="fedntc-simulate overrides")
    parser.add_argument("--checkout", type=Path, default=None, help="run this checkout's code")
    parser.add_argument("--label", default="", help="a name for the row (e.g. before/after)")
    parser.add_argument("--csv", type=Path, default=None, help="append the row here")
    args = parser.parse_args()
    overrides = args.overrides or VECTOR_RUN
    with tempfile.TemporaryDirectory(prefix="fedntc-overhead-") as tmp:
        run = Path(tmp) / "run"
        command = ["fedntc-simulate"]
        if args.checkout:  # the checkout's launcher, conf/ and app, not the installed ones
            code = "from launch.simulate import hydra_main; hydra_main()"
            command = [sys.executable, "-c", code]
        command += [*overrides, f"output_dir={run}", f"hydra.run.dir={run}"]
        launched = time.time()
        done = subprocess.run(command, cwd=args.checkout, capture_output=True, text=True)
        ended = time.time()
        if done.returncode != 0:
            raise SystemExit(f"fedntc-simulate exited {done.returncode}:\n{done.stderr[-3000:]}")
        figures = measure(run, launched, ended)
    row = {"label": args.label, "overrides": " ".join(overrides), **figures}
    print(json.dumps(row, indent=1))
    if args.csv:
        new = not args.csv.exists()
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("a", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)


if __name__ == "__main__":
    main()

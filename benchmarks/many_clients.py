"""Wall time per round and peak memory against the number of virtual clients, with sampling.

    python benchmarks/many_clients.py                       # 16, 64, 128, 256 clients
    python benchmarks/many_clients.py --clients 16 256 --fraction 0.1 --rounds 4
    python benchmarks/many_clients.py --from-csv docs/data/many-clients.csv \
        --plot docs/img/many-clients.png                   # replot the kept table

Each size is one ``fedntc-simulate`` run of the vector model (personalized) in which every
round samples ``fraction`` of the clients for training and for evaluation. Printed and
written as CSV: seconds per round (rounds after the first, between the ServerApp's round
checkpoints), the training seconds of those rounds' clients summed and spread over the cores, their
ratio, and the peak summed RSS of the whole process tree. The last line gives what each more
client costs in memory: the slope of peak memory against the number of clients, over the
sizes that sample enough clients to keep every Ray actor busy (each actor imports the ClientApp
on its first message, so a smaller sample leaves one out).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
from main_job import tree_rss
from round_overhead import checkpoint_times


def round_seconds(run: Path) -> dict[int, float]:
    """Seconds of each round after the first: the time between its checkpoint and the one
    before (the ServerApp writes one after every round)."""
    stamps = checkpoint_times(run)
    return {r: stamps[r] - stamps[r - 1] for r in sorted(stamps) if r - 1 in stamps}


def run_one(clients: int, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    """One run with ``clients`` virtual clients; its round time, compute and peak memory."""
    sampled = max(1, math.floor(args.fraction * clients))
    run = folder / f"clients-{clients}"
    command = [
        "fedntc-simulate", "model=vector", "data=vectors", "train=vector",
        f"data.num_clients={clients}", f"num_rounds={args.rounds}",
        f"train.local_steps={args.local_steps}", "data.test_size=1024",
        f"strategy.fraction_train={args.fraction}", f"strategy.fraction_evaluate={args.fraction}",
        f"strategy.min_clients={sampled}", f"output_dir={run}", f"hydra.run.dir={run}-hydra",
    ]  # fmt: skip
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    root, peak = psutil.Process(child.pid), 0
    while child.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, tree_rss(root))
        time.sleep(0.2)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"{clients} clients: fedntc-simulate exited {child.returncode}; see {run}")
    later = round_seconds(run)
    rows = list(csv.DictReader((run / "train.csv").open()))
    train = sum(float(r["train-seconds"]) for r in rows if int(r["round"]) in later)
    per_round = sum(later.values()) / len(later)
    compute = train / len(later) / min(os.cpu_count() or 1, sampled)
    return {
        "clients": clients,
        "sampled_per_round": sampled,
        "seconds_per_round": round(per_round, 2),
        "train_seconds_per_round_per_core": round(compute, 2),
        "round_over_compute": round(per_round / compute, 2) if compute else math.nan,
        "peak_rss_gib": round(peak / 2**30, 3),
        "run_wall_seconds": round(wall, 1),
    }


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def plot(rows: list[dict[str, float]], fraction: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clients = [r["clients"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(clients, [r["seconds_per_round"] for r in rows], "o-", label="round (wall)")
    left.plot(clients, [r["train_seconds_per_round_per_core"] for r in rows], "s--",
              label="training / cores")  # fmt: skip
    left.set(xlabel="virtual clients", ylabel="seconds per round", xscale="log")
    left.legend()
    right.plot(clients, [r["peak_rss_gib"] for r in rows], "o-")
    right.set(xlabel="virtual clients", ylabel="peak RSS of all processes (GiB)", xscale="log")
    right.set_ylim(bottom=0)
    for axis in (left, right):
        axis.minorticks_off()
        axis.set_xticks(clients, [str(c) for c in clients])
        axis.grid(alpha=0.3)
    fig.suptitle(f"{fraction:.0%} of the clients sampled per round (vector model, 2 cores)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64, 128, 256])
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--local-steps", type=int, default=50)
    parser.add_argument("--csv", type=Path, default=None, help="write the table here")
    parser.add_argument("--plot", type=Path, default=None, help="write the plot here")
    parser.add_argument("--from-csv", type=Path, default=None, help="replot a written table")
    args = parser.parse_args()
    if args.from_csv:
        counts = ("clients", "sampled_per_round")
        rows = [
            {k: int(v) if k in counts else float(v) for k, v in r.items()}
            for r in csv.DictReader(args.from_csv.open())
        ]
    else:
        with tempfile.TemporaryDirectory(prefix="fedntc-many-") as tmp:
            rows = [run_one(n, args, Path(tmp)) for n in args.clients]
    names = list(rows[0])
    print(" ".join(f"{n:>32}" if i == 0 else f"{n:>{len(n) + 1}}" for i, n in enumerate(names)))
    for r in rows:
        print(
            " ".join(
                f"{r[n]:>32}" if i == 0 else f"{r[n]:>{len(n) + 1}}" for i, n in enumerate(names)
            )
        )
    busy = [r for r in rows if r["sampled_per_round"] >= (os.cpu_count() or 1)]  # all actors
    if len(busy) > 1:
        xs = [float(r["clients"]) for r in busy]
        mem = slope(xs, [r["peak_rss_gib"] * 2**20 for r in busy])
        sizes = ", ".join(str(r["clients"]) for r in busy)
        print(f"each client more: {mem:.0f} KiB of peak memory (slope over {sizes} clients)")
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=names)
            writer.writeheader()
            writer.writerows(rows)
    if args.plot:
        plot(rows, args.fraction, args.plot)


if __name__ == "__main__":
    main()

"""Wall time and peak memory of a command and every process it starts (Ray actors included).

    python benchmarks/main_job.py                      # the README's main job
    python benchmarks/main_job.py -- fedntc-simulate strategy=local

Samples the summed resident memory (RSS) of the whole process tree every 0.2 s.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

import psutil

MAIN_JOB = [  # the README's quick start
    "fedntc-simulate",
    "-m",
    "strategy=personalized,fedavg,local",
    "model=base",
    "train=finetune",
]


def tree_rss(root: psutil.Process) -> int:
    """Summed RSS of ``root`` and its descendants (processes that vanish are skipped)."""
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def main() -> None:
    command = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else MAIN_JOB
    started = time.perf_counter()
    child = subprocess.Popen(command)
    root = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, tree_rss(root))
        time.sleep(0.2)
    wall = time.perf_counter() - started
    print(f"command: {' '.join(command)}")
    print(f"exit code: {child.returncode}")
    print(f"wall time: {wall:.1f} s   peak RSS (process tree, summed): {peak / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()

"""Whether a run directory holds a run to skip, to resume, or one of another config.

Used before a simulation starts (``fedntc-simulate`` skips finished runs, resumes the
rest) and by the ServerApp itself when ``resume=true`` (so a deployed run checks too).
"""

from __future__ import annotations

import math
from pathlib import Path

from common.config import RUN_SCHEDULE_KEYS, RunConfig, run_identity
from common.run_folder import RunFolder
from common.train import round_lr


def previous_run(conf: RunConfig, run_dir: Path) -> str:
    """``new``, ``finished`` or ``interrupted`` for a run of ``conf`` in ``run_dir``.

    Raises if ``run_dir`` holds a run of a different config, or if ``conf`` would change the
    learning rate of a round that run has already trained.
    """
    folder = RunFolder(run_dir)
    if not folder.config_file.exists():
        return "new"
    old = folder.read_config()
    before, now = run_identity(old), run_identity(conf)
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if set(changed) - RUN_SCHEDULE_KEYS:
        raise ValueError(
            f"{run_dir} holds a run with another config (keys {changed}); "
            "use a new output_dir or sweep directory"
        )
    done = folder.rounds_done()
    for server_round in range(1, done + 1):
        was = round_lr(old.train, server_round, old.num_rounds)
        will = round_lr(conf.train, server_round, conf.num_rounds)
        if not math.isclose(was, will):
            raise ValueError(
                f"{run_dir} trained round {server_round} at lr {was:g}; this config "
                f"({', '.join(changed) or 'num_rounds'}) gives it lr {will:g}. Use a new "
                "output_dir, or a schedule that leaves the rounds already done unchanged"
            )
    summary = folder.read_summary()
    if summary is not None and summary["rounds"] >= conf.num_rounds:
        return "finished"
    return "interrupted" if done else "new"

"""One line per round: where a run is, how long its rounds take and how long it has left."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

MARKER = "fedntc progress:"  # what launch/ picks out of Flower's log stream


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 05 s`` or ``1 h 02 min``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class RoundClock:
    """Times the rounds of one ServerApp process (run-wide round numbers, so a resumed run
    counts from where it resumed) and estimates the time left from the rounds after the
    first, which also pays for starting the clients."""

    def __init__(self, last_round: int, clock: Callable[[], float] = time.perf_counter) -> None:
        self.last_round = last_round
        self.clock = clock
        self.started = self.previous = clock()
        self.seconds: list[float] = []

    def tick(self, server_round: int) -> str:
        """The progress line for the end of (run-wide) ``server_round``."""
        now = self.clock()
        self.seconds.append(now - self.previous)
        self.previous = now
        typical = statistics.fmean(self.seconds[1:] or self.seconds)
        left = typical * max(self.last_round - server_round, 0)
        return (
            f"{MARKER} round {server_round}/{self.last_round} in {duration(self.seconds[-1])}; "
            f"{duration(now - self.started)} elapsed, about {duration(left)} left"
        )

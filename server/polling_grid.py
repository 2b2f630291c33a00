"""A Grid that collects replies as soon as they arrive.

Flower's network grid (the ServerApp's connection to the SuperLink) sleeps 3 s between two
pulls in ``send_and_receive``: every train and every evaluate phase waits up to 3 s after its
last reply. :class:`PollingGrid` wraps any :class:`~flwr.serverapp.Grid` and implements
``send_and_receive`` with the grid's own public ``push_messages``/``pull_messages``. It pulls
every ``first_interval`` s at first and then every ``lag`` × the time waited so far (at most
``max_interval``), so the last reply is collected at most ``first_interval`` s plus 5 % of
the phase after it arrives; a doubling back-off could wait as long again as the phase took.
Everything else is delegated unchanged, so replies, timeouts and errors are exactly
Flower's.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from logging import INFO
from typing import TYPE_CHECKING

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore import log

if TYPE_CHECKING:
    from flwr.supercore.run import Run


class PollingGrid(Grid):
    """``grid`` with a poll interval for replies proportional to the time waited."""

    def __init__(
        self,
        grid: Grid,
        first_interval: float = 0.02,
        max_interval: float = 0.5,
        lag: float = 0.05,
    ):
        self.grid = grid
        self.first_interval = first_interval
        self.max_interval = max_interval
        self.lag = lag

    def interval(self, waited: float) -> float:
        """Seconds until the next pull after ``waited`` s without every reply."""
        return min(max(self.first_interval, self.lag * waited), self.max_interval)

    def set_run(self, run: Run) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Run:
        return self.grid.run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push, then pull until every message has a reply or ``timeout`` s have passed."""
        started = time.monotonic()
        waiting = set(self.push_messages(messages))
        pushed = time.monotonic()
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while waiting:
            received = list(self.pull_messages(waiting))
            replies += received
            waiting -= {m.metadata.reply_to_message_id for m in received}
            if not waiting or (deadline is not None and time.monotonic() >= deadline):
                break
            pause = self.interval(time.monotonic() - pushed)
            if deadline is not None:
                pause = min(pause, deadline - time.monotonic())
            time.sleep(max(pause, 0.0))
        log(
            INFO,
            "fedntc: %d replies, %d missing; push %.2f s, replies after %.2f s",
            len(replies),
            len(waiting),
            pushed - started,
            time.monotonic() - started,
        )
        return replies

"""PollingGrid's loop: replies as soon as they are there, the timeout honoured. (Every
simulation and deployment test runs through it against Flower's real grids.)"""

import time

from flwr.app import Error, Message

from server.polling_grid import PollingGrid
from tests.helpers import metadata


class ScriptedGrid:
    """Replies to message ids after given delays (the part of a Grid the loop uses)."""

    def __init__(self, delays):
        self.delays = delays  # message id -> seconds until its reply exists
        self.pushed_at = 0.0
        self.pulls = 0

    def push_messages(self, messages):
        self.pushed_at = time.monotonic()
        return list(self.delays)

    def pull_messages(self, message_ids):
        self.pulls += 1
        now = time.monotonic() - self.pushed_at
        replies = []
        for mid in message_ids:
            if self.delays[mid] <= now:
                reply = Message(Error(0, "x"), metadata=metadata("train", 1, 0))
                reply.metadata.__dict__["_reply_to_message_id"] = mid
                replies.append(reply)
        return replies


def grid_with(delays):
    scripted = ScriptedGrid(delays)
    return PollingGrid(scripted, first_interval=0.02, max_interval=0.2), scripted


def test_replies_are_collected_as_soon_as_they_arrive():
    grid, scripted = grid_with({"a": 0.05, "b": 0.3})
    started = time.monotonic()
    replies = list(grid.send_and_receive([], timeout=10))
    elapsed = time.monotonic() - started
    assert sorted(r.metadata.reply_to_message_id for r in replies) == ["a", "b"]
    assert 0.3 <= elapsed < 0.45  # Flower's own loop would take 3 s here
    assert scripted.pulls <= 0.3 / 0.02 + 2  # pulling every 20 ms, not spinning


def test_the_poll_interval_grows_with_the_wait_and_is_capped():
    grid = PollingGrid(ScriptedGrid({}), first_interval=0.02, max_interval=0.5, lag=0.05)
    assert grid.interval(0.1) == 0.02
    assert abs(grid.interval(4.0) - 0.2) < 1e-9  # a reply waits at most 5 % of the phase
    assert grid.interval(600.0) == 0.5


def test_a_late_reply_in_a_long_phase_is_collected_within_a_few_percent():
    grid, scripted = grid_with({"a": 1.0})
    started = time.monotonic()
    list(grid.send_and_receive([], timeout=10))
    elapsed = time.monotonic() - started
    # a doubling back-off (20 ms, 40, 80, ...) would pull at 0.62 s and then at 1.26 s
    assert 1.0 <= elapsed < 1.0 + 0.05 * 1.0 + 0.08
    assert scripted.pulls < 50  # about 20 at 20 ms, then 5 % of the wait: not spinning


def test_the_timeout_ends_the_wait_with_the_replies_so_far():
    grid, _ = grid_with({"a": 0.0, "b": 60.0})
    started = time.monotonic()
    replies = list(grid.send_and_receive([], timeout=0.5))
    assert [r.metadata.reply_to_message_id for r in replies] == ["a"]
    assert 0.5 <= time.monotonic() - started < 1.0

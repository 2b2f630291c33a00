"""What was sent, what came back, and which replies can be used.

A reply that cannot be used (an error, a wrong record layout, metrics that differ from the
other replies' or miss what the server reads, personal or missing array keys) is a recorded
failure of that node in that round, never an exception that ends the run; a node that was sent
a message and did not answer within the round's timeout is a failure too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from flwr.app import Message

from common.split import KeySplit

WEIGHT_KEY = "num-examples"
# Metrics the server reads from every reply of a phase (besides the weight).
REQUIRED_METRICS = {
    "train": frozenset({WEIGHT_KEY, "client-id"}),
    "evaluate": frozenset({WEIGHT_KEY, "client-id", "real_bpp", "est_bpp", "psnr", "ms_ssim"}),
}


@dataclass
class Outbox:
    """The messages of one phase of one round, to name the node behind every reply (an
    error reply the SuperLink makes for a vanished node comes from the SuperLink itself)
    and the nodes that never answered."""

    messages: list[Message] = field(default_factory=list)

    @cached_property
    def _by_message_id(self) -> dict[str, int]:
        # Grid.push_messages sets message_id (the object id) on the objects we handed over;
        # read only once replies are in, after the push.
        return {m.metadata.message_id or m.object_id: m.metadata.dst_node_id for m in self.messages}

    def node_of(self, reply: Message) -> int:
        """The node a reply is from: the destination of the message it answers."""
        return self._by_message_id.get(
            reply.metadata.reply_to_message_id, reply.metadata.src_node_id
        )

    def missing(self, replies: Iterable[Message]) -> list[int]:
        """Nodes that were sent a message and have no reply among ``replies``."""
        answered = {self.node_of(r) for r in replies}
        return sorted({m.metadata.dst_node_id for m in self.messages} - answered)


def layout_problem(msg: Message, phase: str, split: KeySplit, origin: str) -> str:
    """Why a reply's records cannot be used ('' when they can)."""
    metrics = list(msg.content.metric_records.values())
    if len(metrics) != 1:
        return f"{origin} has {len(metrics)} MetricRecords, not 1"
    missing = sorted(REQUIRED_METRICS[phase] - set(metrics[0].keys()))
    if missing:
        return f"{origin} lacks metrics {missing}"
    weight = metrics[0][WEIGHT_KEY]
    if isinstance(weight, list) or not weight > 0:
        return f"{origin} has {WEIGHT_KEY}={weight!r}, not a positive number"
    if phase != "train":
        return ""
    arrays = list(msg.content.array_records.values())
    if len(arrays) != 1:
        return f"{origin} has {len(arrays)} ArrayRecords, not 1"
    try:
        split.check_shared_keys(arrays[0].keys(), origin=origin)
    except ValueError as err:
        return str(err)
    return ""


def metric_keys(msg: Message) -> frozenset[str]:
    return frozenset(next(iter(msg.content.metric_records.values())).keys())


def odd_metric_keys(replies: list[Message], origins: list[str]) -> dict[int, str]:
    """Replies (by index) whose metric keys differ from the most common set, with the
    difference: Flower averages only replies that agree."""
    if not replies:
        return {}
    keys = [metric_keys(m) for m in replies]
    common = Counter(keys).most_common(1)[0][0]
    return {
        i: f"{origins[i]} has metric keys that differ from the other replies "
        f"(extra {sorted(k - common)}, missing {sorted(common - k)})"
        for i, k in enumerate(keys)
        if k != common
    }

"""Flower's FedAvg, FedAvgM or FedAdam, restricted to the shared keys of the model."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from logging import ERROR, WARNING
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAdam, FedAvg, FedAvgM
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords
from flwr.supercore import log

from common.config import StrategyConfig
from common.split import KeySplit
from server.replies import Outbox, layout_problem, odd_metric_keys

PER_CLIENT_KEYS = ("client-id", "shared-hash", "state-round", "ray-node")


def aggregate_metrics(records: list[RecordDict], weighted_by_key: str) -> MetricRecord:
    """Flower's weighted mean, without the per-client identifiers that do not average."""
    metrics = aggregate_metricrecords(records, weighted_by_key)
    for key in PER_CLIENT_KEYS:
        if key in metrics:
            del metrics[key]
    return metrics


class SharedKeys:
    """A Flower strategy over the shared keys only, weighted by ``num-examples``: mixed in
    before :class:`~flwr.serverapp.strategy.FedAvg` or one of its server-optimizer subclasses
    (FedAvgM, FedAdam), which then see only the shared arrays (the server never holds the
    personal ones) and apply their update to the weighted mean of the accepted replies.

    A reply that cannot be used is rejected: left out of the average and recorded in
    :attr:`failures` with the node and the reason (a personal, unknown or missing array key —
    personal entropy models must never be averaged —, a wrong record layout, missing or odd
    metrics, an error); so is every node that was sent a message and did not answer within
    ``round_timeout``. Each client's metrics are kept in :attr:`client_rows`, the weighted
    means per round in :attr:`round_rows`, with ``below_min_clients`` when fewer replies than
    the strategy's minimum were accepted.

    Args:
        split: the model's shared / personal keys; the server averages and sends the shared.
        round_offset: rounds already done (a resumed run numbers rounds from offset + 1).
        lr_at: the learning rate sent as ``lr`` for a (run-wide) round number; ``None`` leaves
            the train config as given.
        evaluate_every: evaluate every N rounds, and always in round ``last_round``.
        last_round: the run's final round number (run-wide).
        round_timeout: seconds a round waits for replies (named in failures).
        **kwargs: passed to the Flower strategy.
    """

    def __init__(
        self,
        split: KeySplit,
        round_offset: int = 0,
        lr_at: Callable[[int], float] | None = None,
        evaluate_every: int = 1,
        last_round: int = 0,
        round_timeout: float = 3600.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("train_metrics_aggr_fn", aggregate_metrics)
        kwargs.setdefault("evaluate_metrics_aggr_fn", aggregate_metrics)
        super().__init__(**kwargs)
        self.split = split
        self.round_offset = round_offset
        self.lr_at = lr_at
        self.evaluate_every = evaluate_every
        self.last_round = last_round
        self.round_timeout = round_timeout
        self._outbox: dict[str, Outbox] = {}
        self.client_rows: list[dict[str, Any]] = []
        self.round_rows: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        server_round += self.round_offset
        if self.lr_at is not None:
            config = ConfigRecord({**config, "lr": self.lr_at(server_round)})
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self._outbox["train"] = Outbox(messages)
        return messages

    def evaluates(self, server_round: int) -> bool:
        """Whether the clients evaluate after (run-wide) ``server_round``."""
        return server_round % self.evaluate_every == 0 or server_round == self.last_round

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        server_round += self.round_offset
        messages = []
        if self.evaluates(server_round):
            messages = list(super().configure_evaluate(server_round, arrays, config, grid))
        self._outbox["evaluate"] = Outbox(messages)
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        server_round += self.round_offset
        accepted = self._usable("train", server_round, list(replies))
        arrays, metrics = super().aggregate_train(server_round, accepted)
        self._record_round("train", server_round, metrics)
        return arrays, metrics

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        server_round += self.round_offset
        replies = list(replies)
        if not self.evaluates(server_round):
            return None
        accepted = self._usable("evaluate", server_round, replies)
        metrics = super().aggregate_evaluate(server_round, accepted)
        self._record_round("evaluate", server_round, metrics)
        return metrics

    def _usable(self, phase: str, server_round: int, replies: list[Message]) -> list[Message]:
        """Record every reply (or its absence) of one phase; return the ones to aggregate."""
        outbox = self._outbox.get(phase, Outbox())
        candidates: list[tuple[Message, int, str]] = []
        for msg in replies:
            node = outbox.node_of(msg)
            origin = f"{phase} reply from node {node}"
            if msg.has_error():
                self._record_failure(phase, server_round, node, msg.error.reason)
                continue
            problem = layout_problem(msg, phase, self.split, origin)
            if problem:
                self._record_failure(phase, server_round, node, problem)
                continue
            candidates.append((msg, node, origin))
        odd = odd_metric_keys([m for m, _, _ in candidates], [o for _, _, o in candidates])
        accepted = []
        for i, (msg, node, _) in enumerate(candidates):
            if i in odd:
                self._record_failure(phase, server_round, node, odd[i])
                continue
            self._record(phase, server_round, msg, node)
            accepted.append(msg)
        for node in outbox.missing(replies):
            reason = f"no reply within {self.round_timeout:g} s"
            self._record_failure(phase, server_round, node, reason)
        return accepted

    def _record(self, phase: str, server_round: int, msg: Message, node: int) -> None:
        metrics = next(iter(msg.content.metric_records.values()))
        row: dict[str, Any] = {"phase": phase, "round": server_round, "node_id": node}
        row.update({k: v for k, v in metrics.items() if not isinstance(v, list)})
        self.client_rows.append(row)

    def _record_round(self, phase: str, server_round: int, metrics: MetricRecord | None) -> None:
        row: dict[str, Any] = {"phase": phase, "round": server_round}
        row.update({k: v for k, v in (metrics or {}).items() if not isinstance(v, list)})
        row["clients"] = sum(
            1 for r in self.client_rows if r["phase"] == phase and r["round"] == server_round
        )
        row["failures"] = sum(
            1 for r in self.failures if r["phase"] == phase and r["round"] == server_round
        )
        minimum = self.min_train_nodes if phase == "train" else self.min_evaluate_nodes
        row["below_min_clients"] = row["clients"] < minimum
        if row["below_min_clients"]:
            log(
                WARNING,
                "fedntc: %s round %d accepted %d replies, fewer than strategy.min_clients=%d",
                phase,
                server_round,
                row["clients"],
                minimum,
            )
        self.round_rows.append(row)

    def _record_failure(self, phase: str, server_round: int, node: int, reason: str) -> None:
        log(ERROR, "fedntc: %s round %d, node %d failed: %s", phase, server_round, node, reason)
        self.failures.append(
            {"phase": phase, "round": server_round, "node_id": node, "reason": reason}
        )

    def server_state(self) -> dict[str, np.ndarray]:
        """The server optimizer's state, saved with each checkpoint (plain FedAvg: none)."""
        return {}

    def restore_server_state(self, state: dict[str, np.ndarray], origin: str) -> None:
        """Continue from :meth:`server_state` saved in ``origin`` (a resumed run)."""
        if state:
            raise ValueError(f"{origin} holds server optimizer state, but this run uses FedAvg")


def _named(prefix: str, state: dict[str, np.ndarray], keys: Iterable[str], origin: str) -> dict:
    """The arrays saved as ``prefix/<key>`` for exactly ``keys``; an error names the file."""
    found = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    if set(found) != set(keys):
        raise ValueError(f"{origin}: {prefix}* does not match the shared keys of this model")
    return found


class SharedKeysFedAvg(SharedKeys, FedAvg):
    """FedAvg (McMahan et al., 2017) over the shared keys."""


class SharedKeysFedAvgM(SharedKeys, FedAvgM):
    """FedAvgM (Hsu et al., 2019): server SGD with momentum on the shared keys' mean update."""

    _momentum_by_key: dict[str, np.ndarray] | None = None  # restored, set at the first round

    def server_state(self) -> dict[str, np.ndarray]:
        if self.momentum_vector is None or self.current_arrays is None:
            return {}
        names = list(self.current_arrays.keys())  # Flower keeps the momentum in this order
        return {f"momentum/{k}": v for k, v in zip(names, self.momentum_vector, strict=True)}

    def restore_server_state(self, state: dict[str, np.ndarray], origin: str) -> None:
        if state:
            found = _named("momentum/", state, self.split.shared, origin)
            self._momentum_by_key = found

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = super().configure_train(server_round, arrays, config, grid)
        restored = self._momentum_by_key
        if restored is not None and self.current_arrays is not None:
            self.momentum_vector = [restored[k] for k in self.current_arrays]
            self._momentum_by_key = None
        return messages


class SharedKeysFedAdam(SharedKeys, FedAdam):
    """FedAdam (Reddi et al., 2021): server Adam on the shared keys' mean update."""

    def server_state(self) -> dict[str, np.ndarray]:
        moments = {"m_t/": self.m_t or {}, "v_t/": self.v_t or {}}
        return {f"{p}{k}": v for p, values in moments.items() for k, v in values.items()}

    def restore_server_state(self, state: dict[str, np.ndarray], origin: str) -> None:
        if state:
            self.m_t = _named("m_t/", state, self.split.shared, origin)
            self.v_t = _named("v_t/", state, self.split.shared, origin)


def server_strategy(
    optimizer: str,
    server_lr: float,
    server_momentum: float,
    split: KeySplit,
    server_tau: float = StrategyConfig.server_tau,
    **kwargs: Any,
) -> SharedKeys:
    """The shared-keys strategy of ``strategy.server_optimizer``, with its server learning
    rate, momentum and (FedAdam) ``tau``, added to the root of v_t, in the names its Flower class
    uses."""
    if optimizer == "fedavg":
        return SharedKeysFedAvg(split, **kwargs)
    if optimizer == "fedavgm":
        return SharedKeysFedAvgM(
            split, server_learning_rate=server_lr, server_momentum=server_momentum, **kwargs
        )
    if optimizer == "fedadam":
        return SharedKeysFedAdam(
            split, eta=server_lr, beta_1=server_momentum, tau=server_tau, **kwargs
        )
    raise ValueError(f"unknown strategy.server_optimizer {optimizer!r}")

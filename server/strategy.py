"""FedAvg restricted to the shared keys of the model."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from logging import ERROR
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords
from flwr.supercore import log

from common.split import KeySplit

PER_CLIENT_KEYS = ("client-id", "shared-hash", "state-round")


def aggregate_metrics(records: list[RecordDict], weighted_by_key: str) -> MetricRecord:
    """Flower's weighted mean, without the per-client identifiers that do not average."""
    metrics = aggregate_metricrecords(records, weighted_by_key)
    for key in PER_CLIENT_KEYS:
        if key in metrics:
            del metrics[key]
    return metrics


class SharedKeysFedAvg(FedAvg):
    """FedAvg (McMahan et al., 2017) over the shared keys only, weighted by
    ``num-examples``.

    A reply that carries a personal key, an unknown key or misses a shared key is rejected:
    it is left out of the average and recorded in :attr:`failures` with the offending keys
    (personal entropy models must never be averaged). Each client's metrics are kept in
    :attr:`client_rows`, the weighted means per round in :attr:`round_rows`.

    Args:
        split: the model's shared / personal keys; the server averages and sends the shared.
        round_offset: rounds already done (a resumed run numbers rounds from offset + 1).
        lr_at: the learning rate sent as ``lr`` for a (run-wide) round number; ``None`` leaves
            the train config as given.
        evaluate_every: evaluate every N rounds, and always in round ``last_round``.
        last_round: the run's final round number (run-wide).
        **kwargs: passed to :class:`flwr.serverapp.strategy.FedAvg`.
    """

    def __init__(
        self,
        split: KeySplit,
        round_offset: int = 0,
        lr_at: Callable[[int], float] | None = None,
        evaluate_every: int = 1,
        last_round: int = 0,
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
        self.client_rows: list[dict[str, Any]] = []
        self.round_rows: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        server_round += self.round_offset
        if self.lr_at is not None:
            config = ConfigRecord({**config, "lr": self.lr_at(server_round)})
        return super().configure_train(server_round, arrays, config, grid)

    def evaluates(self, server_round: int) -> bool:
        """Whether the clients evaluate after (run-wide) ``server_round``."""
        return server_round % self.evaluate_every == 0 or server_round == self.last_round

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        server_round += self.round_offset
        if not self.evaluates(server_round):
            return []
        return super().configure_evaluate(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        server_round += self.round_offset
        accepted = []
        for msg in replies:
            if msg.has_error():
                self._record_failure("train", server_round, msg, msg.error.reason)
                continue
            problem = self._key_problem(msg)
            if problem:
                log(ERROR, "rejected a train reply: %s", problem)
                self._record_failure("train", server_round, msg, problem)
                continue
            self._record("train", server_round, msg)
            accepted.append(msg)
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
        for msg in replies:
            if msg.has_error():
                self._record_failure("evaluate", server_round, msg, msg.error.reason)
            else:
                self._record("evaluate", server_round, msg)
        metrics = super().aggregate_evaluate(server_round, replies)
        self._record_round("evaluate", server_round, metrics)
        return metrics

    def _key_problem(self, msg: Message) -> str:
        """Why a train reply cannot be averaged ('' when it carries exactly the shared keys)."""
        origin = f"reply from node {msg.metadata.src_node_id}"
        records = list(msg.content.array_records.values())
        if len(records) != 1:
            return f"{origin} has {len(records)} ArrayRecords, not 1"
        try:
            self.split.check_shared_keys(records[0].keys(), origin=origin)
        except ValueError as err:
            return str(err)
        return ""

    def _record(self, phase: str, server_round: int, msg: Message) -> None:
        metrics = next(iter(msg.content.metric_records.values()))
        row: dict[str, Any] = {
            "phase": phase,
            "round": server_round,
            "node_id": msg.metadata.src_node_id,
        }
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
        self.round_rows.append(row)

    def _record_failure(self, phase: str, server_round: int, msg: Message, reason: str) -> None:
        node = msg.metadata.src_node_id
        self.failures.append(
            {"phase": phase, "round": server_round, "node_id": node, "reason": reason}
        )

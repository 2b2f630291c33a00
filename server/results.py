"""What the ServerApp records of a run: config, per-client metrics, checkpoints, summary."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord

from common.config import RunConfig
from common.metrics import psnr_from_mse
from common.run_folder import CSV_NAMES, RunFolder

EVAL_COLUMNS = ("real_bpp", "est_bpp", "psnr", "ms_ssim")


class RunRecorder:
    """Writes what a run produces into its :class:`RunFolder` (config, CSVs, checkpoints,
    summary) and gives the run its uid (read back when resuming, new otherwise)."""

    def __init__(self, folder: RunFolder, conf: RunConfig) -> None:
        self.folder = folder
        self.conf = conf
        folder.path.mkdir(parents=True, exist_ok=True)
        folder.write_config(conf)
        self.run_uid = folder.start_run(resume=conf.resume)

    @property
    def run_dir(self) -> Path:
        return self.folder.path

    def checkpoint(
        self, server_round: int, arrays: ArrayRecord, server_state: dict[str, Any] | None = None
    ) -> Path:
        """Save the round's shared weights and the server optimizer's state atomically."""
        state = {k: v.clone() for k, v in arrays.to_torch_state_dict().items()}
        optimizer = {k: torch.as_tensor(v).clone() for k, v in (server_state or {}).items()}
        return self.folder.save_checkpoint(
            server_round, state, self.conf.strategy.method, optimizer
        )

    def write_metrics(
        self,
        rows: list[dict[str, Any]],
        round_rows: list[dict[str, Any]],
        failures: list[dict[str, Any]],
    ) -> None:
        """Rewrite the CSVs (per client, and weighted per round) from all rows so far."""
        for phase in ("train", "evaluate"):
            phase_rows = [r for r in rows if r["phase"] == phase]
            if phase_rows:
                self.folder.write_csv(phase, phase_rows)
        if round_rows:
            self.folder.write_csv("rounds", round_rows)
        if failures:
            self.folder.write_csv("failures", failures)

    def previous_rows(self, up_to_round: int) -> dict[str, list[dict[str, Any]]]:
        """Rows of the CSVs already in the run folder, for rounds <= ``up_to_round``
        (a resumed run keeps them)."""
        return {
            name: [r for r in self.folder.read_csv(name) if int(r["round"]) <= up_to_round]
            for name in CSV_NAMES
        }

    def write_summary(self, summary: dict[str, Any]) -> None:
        self.folder.write_summary(summary)


def pixel_weighted_mean(clients: list[dict[str, float]]) -> dict[str, float]:
    """The clients' metrics over all their test pixels: bpp, MS-SSIM and MSE weighted by
    pixels, and PSNR from that mean MSE (as for JPEG/WebP and the base on the pooled images),
    not a mean of the clients' PSNRs in dB, which overstates it."""
    pixels = sum(c["num_pixels"] for c in clients)
    if not pixels:
        return {k: math.nan for k in (*EVAL_COLUMNS, "mse")}
    mean = {
        k: sum(c[k] * c["num_pixels"] for c in clients) / pixels
        for k in ("real_bpp", "est_bpp", "ms_ssim", "mse")
    }
    return {**mean, "psnr": psnr_from_mse(mean["mse"])}


def summarize(
    conf: RunConfig,
    rows: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    bytes_per_message: int,
    wall_seconds: float,
    round_rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Final-round evaluation per client and pixel-weighted over the clients that evaluated
    in it; ``mean_over`` and ``missing_clients`` say whom the mean covers, ``short_rounds``
    lists the rounds that accepted fewer replies than ``strategy.min_clients``."""
    evals = [r for r in rows if r["phase"] == "evaluate"]
    last_round = max((r["round"] for r in evals), default=0)
    final = sorted((r for r in evals if r["round"] == last_round), key=lambda r: r["client-id"])
    clients = {
        int(r["client-id"]): {k: float(r[k]) for k in (*EVAL_COLUMNS, "mse", "num_pixels")}
        for r in final
    }
    mean = pixel_weighted_mean(list(clients.values()))
    return {
        "method": conf.strategy.method,
        "lmbda": conf.train.lmbda,
        "data_kind": "vectors" if conf.data.source == "vectors" else "images",
        "rounds": last_round,
        "clients": clients,
        "mean": mean,
        "bytes_per_client_per_round": {"up": bytes_per_message, "down": bytes_per_message},
        "wall_seconds": wall_seconds,
        "mean_over": sorted(clients),
        "missing_clients": sorted(set(range(conf.data.num_clients)) - set(clients)),
        "short_rounds": [
            {"phase": r["phase"], "round": r["round"], "clients": r["clients"]}
            for r in round_rows or []
            if r.get("below_min_clients") in (True, "True")
        ],
        "failures": [{k: f[k] for k in ("phase", "round", "node_id", "reason")} for f in failures],
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text table of one run's final per-client results (vector runs: bits per
    vector and -10 log10 MSE instead of bits per pixel and PSNR)."""
    if summary.get("data_kind") == "vectors":
        header = f"{'client':>8} {'real b/vec':>9} {'est b/vec':>9} {'-10lgMSE':>8} {'MS-SSIM':>8}"
    else:
        header = f"{'client':>8} {'real bpp':>9} {'est bpp':>9} {'PSNR dB':>8} {'MS-SSIM':>8}"
    lines = [
        f"method={summary['method']} lmbda={summary['lmbda']} rounds={summary['rounds']} "
        f"bytes/client/round up={summary['bytes_per_client_per_round']['up']}",
        header,
    ]
    rows = [(str(k), v) for k, v in summary["clients"].items()] + [("mean", summary["mean"])]
    if summary["failures"]:
        lines.insert(1, f"failed client replies: {summary['failures']}")
    if summary.get("missing_clients"):
        lines.insert(
            1,
            f"mean over clients {summary['mean_over']} only: "
            f"{summary['missing_clients']} did not evaluate in the final round",
        )
    if summary.get("short_rounds"):
        lines.insert(1, f"rounds below strategy.min_clients: {summary['short_rounds']}")
    for name, m in rows:
        lines.append(
            f"{name:>8} {m['real_bpp']:9.4f} {m['est_bpp']:9.4f} "
            f"{m['psnr']:8.2f} {m['ms_ssim']:8.4f}"
        )
    return "\n".join(lines)

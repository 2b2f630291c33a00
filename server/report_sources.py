"""Where a rate–distortion report reads its rows: sweep folders of finished runs, or the
CSVs of an earlier report, merged.

A sweep folder holds one directory per run (``config.json``, ``summary.json``,
``rounds.csv``). A report folder (written by ``fedntc-report``) holds ``results.csv``,
``training.csv``, ``settings.json`` and, for images, ``classic.csv``: enough to redraw every
plot and table without the run directories or the data. Several sources merge into one
report (say, seed 0 kept as CSVs and seed 1 freshly trained); the same point (setting,
method, λ, seed, client) in two sources is an error naming both.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import RunConfig, flatten, from_run_config, run_identity

# Keys that tell the points of one R–D comparison apart; any other key that differs between
# runs of a sweep defines a separate setting (e.g. data.heterogeneity, data.num_clients).
POINT_KEYS = frozenset({"strategy.method", "strategy.shared_prefixes", "train.lmbda", "seed"})
METRICS = ("real_bpp", "est_bpp", "psnr", "ms_ssim")
CLASSIC_METRICS = ("real_bpp", "psnr", "ms_ssim")
REPORT_FILES = ("results.csv", "training.csv", "settings.json")


@dataclass
class ReportRows:
    """Everything a report is drawn from."""

    results: list[dict[str, Any]] = field(default_factory=list)
    training: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, RunConfig] = field(default_factory=dict)
    classic: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def setting_names(configs: dict[Any, dict[str, Any]]) -> dict[Any, str]:
    """Name each run's setting by the config keys (other than :data:`POINT_KEYS` and
    ``strategy.min_clients``) whose values differ across the sweep; ``all`` if none do."""
    identities = {run: run_identity(from_run_config(c)) for run, c in configs.items()}
    ignored = POINT_KEYS | {"strategy.min_clients"}
    keys = sorted(
        k
        for k in set().union(*identities.values())
        if k not in ignored and len({str(i.get(k)) for i in identities.values()}) > 1
    )
    return {
        run: ",".join(f"{k}={identity.get(k)}" for k in keys) or "all"
        for run, identity in identities.items()
    }


def is_report_dir(path: Path) -> bool:
    """Whether ``path`` holds a report's CSVs rather than run directories."""
    return all((path / name).is_file() for name in REPORT_FILES)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _number(text: str) -> float:
    return float(text) if text not in ("", "nan") else math.nan


def _result_row(row: dict[str, str], path: Path) -> dict[str, Any]:
    try:
        return {
            **row,
            "lmbda": float(row["lmbda"]),
            "seed": int(row["seed"]),
            "rounds": int(row["rounds"]),
            **{k: _number(row[k]) for k in METRICS},
        }
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: bad row {row}: {e!r}") from e


def _training_row(row: dict[str, str], path: Path) -> dict[str, Any]:
    try:
        return {
            **row,
            "lmbda": float(row["lmbda"]),
            "seed": int(row["seed"]),
            "round": int(row["round"]),
            "loss": float(row["loss"]),
            "lr": float(row["lr"]) if row.get("lr") else None,
        }
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: bad row {row}: {e!r}") from e


def _sweep_units(sweep_dir: Path) -> dict[tuple[Path, str], dict[str, Any]]:
    """Flat config of every finished run under ``sweep_dir``, keyed by (source, run)."""
    units = {
        (sweep_dir, str(p.parent.relative_to(sweep_dir))): json.loads(
            (p.parent / "config.json").read_text()
        )
        for p in sorted(sweep_dir.glob("**/summary.json"))
    }
    if not units:
        raise FileNotFoundError(f"no finished runs (summary.json) under {sweep_dir}")
    return units


def _report_units(report_dir: Path) -> dict[tuple[Path, str], dict[str, Any]]:
    """Flat config of every setting of an earlier report, keyed by (source, setting)."""
    path = report_dir / "settings.json"
    try:
        settings = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from e
    return {(report_dir, name): conf for name, conf in settings.items()}


def _rows_of_run(sweep_dir: Path, run_name: str, setting: str) -> tuple[list, list]:
    run = sweep_dir / run_name
    conf = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    base = {
        "setting": setting,
        "method": summary["method"],
        "lmbda": summary["lmbda"],
        "seed": conf["seed"],
        "rounds": summary["rounds"],
        "run": run_name,
    }
    results = [
        {**base, "client": client, **{k: metrics[k] for k in METRICS}}
        for client, metrics in [*summary["clients"].items(), ("mean", summary["mean"])]
    ]
    training = []
    rounds_csv = run / "rounds.csv"
    if rounds_csv.exists():
        for row in _read_csv(rounds_csv):
            if row["phase"] == "train":
                lr = float(row["lr"]) if row.get("lr") else None
                training.append(
                    {**base, "round": int(row["round"]), "loss": float(row["loss"]), "lr": lr}
                )
    return results, training


def _classic_row(row: dict[str, str], path: Path) -> dict[str, Any]:
    try:
        quality = int(row["quality"])
        return {**row, "quality": quality, **{k: _number(row[k]) for k in CLASSIC_METRICS}}
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: bad row {row}: {e!r}") from e


PARSERS = {"results": _result_row, "training": _training_row, "classic": _classic_row}


def _rows_of_report(report_dir: Path, rename: dict[str, str], rows: ReportRows) -> None:
    """Add an earlier report's rows to ``rows``, its settings renamed by ``rename``."""
    for kind, parse in PARSERS.items():
        path = report_dir / f"{kind}.csv"
        if not path.exists():
            continue
        for row in _read_csv(path):
            if row.get("setting") not in rename:
                raise ValueError(
                    f"{path}: setting {row.get('setting')!r} is not in "
                    f"{report_dir / 'settings.json'}"
                )
            parsed = {**parse(row, path), "setting": rename[row["setting"]]}
            if kind == "results":
                rows.results.append({**parsed, "source": str(report_dir)})
            elif kind == "training":
                rows.training.append(parsed)
            else:
                rows.classic.setdefault(parsed["setting"], []).append(parsed)


def load_sources(sources: list[Path]) -> ReportRows:
    """Rows of every finished run in ``sources`` (sweep folders or report folders), with
    setting names drawn over all of them."""
    units: dict[tuple[Path, str], dict[str, Any]] = {}
    for source in sources:
        if not source.is_dir():
            raise FileNotFoundError(f"report source {source} is not a folder")
        units |= _report_units(source) if is_report_dir(source) else _sweep_units(source)
    names = setting_names(units)
    rows = ReportRows()
    for unit, conf in units.items():
        rows.settings.setdefault(names[unit], from_run_config(conf))
    for source in sources:
        own = [name for s, name in units if s == source]
        if is_report_dir(source):
            _rows_of_report(source, {u: names[(source, u)] for u in own}, rows)
            continue
        for run_name in own:
            results, training = _rows_of_run(source, run_name, names[(source, run_name)])
            rows.results += [{**r, "source": str(source)} for r in results]
            rows.training += training
    _refuse_duplicates(rows.results)
    return rows


def _refuse_duplicates(results: list[dict[str, Any]]) -> None:
    seen: dict[tuple, str] = {}
    for row in results:
        key = (row["setting"], row["method"], row["lmbda"], row["seed"], row["client"])
        if key in seen and seen[key] != row["source"]:
            raise ValueError(
                f"{row['method']} λ={row['lmbda']} seed={row['seed']} ({row['setting']}) is in "
                f"both {seen[key]} and {row['source']}: keep one of them"
            )
        seen[key] = row["source"]


def settings_json(settings: dict[str, RunConfig]) -> str:
    """The ``settings.json`` of a report: each setting's flat config."""
    return json.dumps({name: flatten(conf) for name, conf in sorted(settings.items())}, indent=1)

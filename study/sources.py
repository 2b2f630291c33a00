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

from common.config import (
    SHARED_PREFIXES,
    ConfigError,
    RunConfig,
    flatten,
    from_run_config,
    run_identity,
)
from common.refit import REFIT_BEFORE_EVALUATE, REFIT_BEFORE_TRAIN

# Keys that tell the points of one R–D comparison apart; any other key that differs between
# runs of a sweep defines a separate setting (e.g. data.heterogeneity, data.num_clients).
POINT_KEYS = frozenset({"strategy.method", "strategy.shared_prefixes", "train.lmbda", "seed"})
METRICS = ("real_bpp", "est_bpp", "psnr", "ms_ssim")
REPORT_FILES = ("results.csv", "training.csv", "settings.json")


def _optional(text: str) -> float | None:
    return float(text) if text else None


def _metric(text: str) -> float:
    return float(text) if text else math.nan


# Column types of a report's CSVs (columns not named here stay strings).
COLUMNS: dict[str, dict[str, Any]] = {
    "results": {"lmbda": float, "seed": int, "rounds": int, **dict.fromkeys(METRICS, _metric)},
    "training": {"lmbda": float, "seed": int, "rounds": int, "round": int, "loss": float},
    "classic": {"quality": int, "real_bpp": _metric, "psnr": _metric, "ms_ssim": _metric},
}
COLUMNS["training"]["lr"] = _optional


@dataclass
class ReportRows:
    """Everything a report is drawn from."""

    results: list[dict[str, Any]] = field(default_factory=list)
    training: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, RunConfig] = field(default_factory=dict)
    classic: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def applies(key: str, method: str) -> bool:
    """Whether a config key can change what ``method`` trains or measures: the refit only
    runs for the methods of :mod:`common.refit`, kept Adam moments need personal
    parameters, a server optimizer needs shared ones."""
    if key == "strategy.refit_steps":
        return method in REFIT_BEFORE_TRAIN | REFIT_BEFORE_EVALUATE
    if key == "strategy.keep_optimizer_state":
        return SHARED_PREFIXES.get(method) != ("*",)
    if key.startswith("strategy.server_"):
        return SHARED_PREFIXES.get(method) != ()
    return True


def setting_memberships(configs: dict[Any, dict[str, Any]]) -> dict[Any, list[str]]:
    """Each run's settings, named by the config keys (other than :data:`POINT_KEYS` and
    ``strategy.min_clients``) whose values differ across the sweep; ``all`` if none do.

    A key that does not :func:`apply` to a run's method does not split it off: a ``local``
    run joins every setting of a sweep over ``strategy.refit_steps`` that matches it in the
    other keys, so each refit value is compared against the same baseline."""
    ignored = POINT_KEYS | {"strategy.min_clients"}
    views = {}
    for run, conf in configs.items():
        identity = run_identity(from_run_config(conf))
        method = str(identity.get("strategy.method"))
        views[run] = {k: v for k, v in identity.items() if k not in ignored and applies(k, method)}
    keys = sorted(
        k
        for k in set().union(*views.values())
        if len({str(v[k]) for v in views.values() if k in v}) > 1
    )

    def name(view: dict[str, Any]) -> str:
        return ",".join(f"{k}={view[k]}" for k in keys if k in view) or "all"

    complete = {name(v): v for v in views.values() if all(k in v for k in keys)}
    memberships = {}
    for run, view in views.items():
        matches = [
            n
            for n, full in complete.items()
            if all(str(full[k]) == str(view[k]) for k in keys if k in view)
        ]
        memberships[run] = [name(view)] if name(view) in complete else matches or [name(view)]
    return memberships


def setting_names(configs: dict[Any, dict[str, Any]]) -> dict[Any, str]:
    """One setting per run (the first of :func:`setting_memberships`)."""
    return {run: names[0] for run, names in setting_memberships(configs).items()}


def is_report_dir(path: Path) -> bool:
    """Whether ``path`` holds a report's CSVs rather than run directories."""
    return all((path / name).is_file() for name in REPORT_FILES)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read it as JSON: {e}") from e


def _typed_rows(path: Path, kind: str) -> list[dict[str, Any]]:
    """The rows of a report CSV with :data:`COLUMNS` types; a bad row names the file."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    required = {"setting", *COLUMNS[kind]} - {"lr", "rounds"}
    typed = []
    for number, row in enumerate(rows, start=2):
        try:
            missing = required - row.keys()
            if missing:
                raise KeyError(f"no column {sorted(missing)}")
            typed.append(
                {k: COLUMNS[kind].get(k, str)(v) if v is not None else v for k, v in row.items()}
            )
        except (KeyError, ValueError) as e:
            raise ValueError(f"{path} line {number}: {e}") from e
    return typed


def _check_source(source: Path) -> None:
    if not source.is_dir():
        raise FileNotFoundError(f"report source {source} is not a folder")
    runs = next(source.glob("*/summary.json"), None)
    if is_report_dir(source) and runs is not None:
        raise ValueError(
            f"{source} holds both a report's CSVs and runs ({runs.parent.name}); "
            "move the report to a folder of its own"
        )
    if (source / "results.csv").is_file() and not is_report_dir(source):
        missing = [name for name in REPORT_FILES if not (source / name).is_file()]
        raise ValueError(
            f"{source} is a report without {', '.join(missing)} (written before reports kept "
            "them): regenerate it from its sweep folder"
        )


def _units(source: Path) -> dict[tuple[Path, str], dict[str, Any]]:
    """Flat configs keyed by (source, name): one per finished run of a sweep folder, or one
    per setting of a report folder."""
    if is_report_dir(source):
        settings = _read_json(source / "settings.json")
        if not isinstance(settings, dict):
            raise ValueError(f"{source / 'settings.json'}: expected setting -> config")
        return {(source, name): conf for name, conf in settings.items()}
    units = {
        (source, str(p.parent.relative_to(source))): _read_json(p.parent / "config.json")
        for p in sorted(source.glob("**/summary.json"))
    }
    if not units:
        raise FileNotFoundError(f"no finished runs (summary.json) under {source}")
    return units


def _rows_of_run(run: Path, name: str, conf: dict[str, Any], setting: str) -> tuple[list, list]:
    """Result rows (each client and ``mean``) and training rows of one finished run."""
    summary = _read_json(run / "summary.json")
    try:
        base = {
            "setting": setting,
            "method": summary["method"],
            "lmbda": summary["lmbda"],
            "seed": conf["seed"],
            "rounds": summary["rounds"],
            "run": name,
        }
        clients = [*summary["clients"].items(), ("mean", summary["mean"])]
        results = [{**base, "client": c, **{k: m[k] for k in METRICS}} for c, m in clients]
    except KeyError as e:
        raise ValueError(f"{run}: summary.json or config.json lacks {e}") from e
    training = []
    if (run / "rounds.csv").exists():
        with (run / "rounds.csv").open(newline="") as f:
            for row in csv.DictReader(f):
                if row["phase"] == "train":
                    lr = _optional(row.get("lr") or "")
                    point = {"round": int(row["round"]), "loss": float(row["loss"]), "lr": lr}
                    training.append({**base, **point})
    return results, training


def _report_rows(report: Path, rename: dict[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
    """An earlier report's results, training and classic rows, settings renamed (a row
    repeated for each setting its own now belongs to)."""
    read = {}
    for kind in COLUMNS:
        path = report / f"{kind}.csv"
        read[kind] = []
        for row in _typed_rows(path, kind) if path.exists() else []:
            if row["setting"] not in rename:
                raise ValueError(f"{path}: setting {row['setting']!r} is not in settings.json")
            read[kind] += [{**row, "setting": name} for name in rename[row["setting"]]]
    return read


def _sweep_rows(sweep: Path, own: dict[str, dict], names: dict) -> dict[str, list[dict]]:
    """Results and training rows of a sweep folder's finished runs, once per setting."""
    read: dict[str, list[dict]] = {"results": [], "training": [], "classic": []}
    for name, conf in own.items():
        for setting in names[(sweep, name)]:
            results, training = _rows_of_run(sweep / name, name, conf, setting)
            read["results"] += results
            read["training"] += training
    return read


def load_sources(sources: list[Path]) -> ReportRows:
    """Rows of every finished run in ``sources`` (sweep folders or report folders), with
    setting names drawn over all of them. A source named twice is read once."""
    sources = list(dict.fromkeys(s.resolve() for s in sources))
    units: dict[tuple[Path, str], dict[str, Any]] = {}
    for source in sources:
        _check_source(source)
        units |= _units(source)
    parsed = {}
    for unit, conf in units.items():
        try:
            parsed[unit] = from_run_config(conf)
        except ConfigError as e:
            raise ValueError(f"{unit[0]} ({unit[1]}): {e}") from e
    names = setting_memberships(units)
    rows = ReportRows()

    # a setting's config is that of a run that belongs to it alone and to which every key
    # applies (personalized before local): a report folder's settings.json is all a later
    # report knows of the setting, and a local config there would lose its refit key
    def representative(item: tuple[tuple[Path, str], RunConfig]) -> tuple[int, int]:
        unit, conf = item
        ignored = sum(not applies(k, conf.strategy.method) for k in flatten(conf))
        return len(names[unit]), ignored

    for unit, conf in sorted(parsed.items(), key=representative):
        for name in names[unit]:
            rows.settings.setdefault(name, conf)
    owner: dict[tuple, Path] = {}
    for source in sources:
        own = {name: conf for (s, name), conf in units.items() if s == source}
        if is_report_dir(source):
            read = _report_rows(source, {n: names[(source, n)] for n in own})
        else:
            read = _sweep_rows(source, own, names)
        for row in read["results"]:
            key = (row["setting"], row["method"], row["lmbda"], row["seed"], row["client"])
            if owner.setdefault(key, source) != source:
                raise ValueError(
                    f"{row['method']} λ={row['lmbda']} seed={row['seed']} ({row['setting']}) "
                    f"is in both {owner[key]} and {source}: keep one of them"
                )
        rows.results += read["results"]
        rows.training += read["training"]
        classic: dict[str, list[dict[str, Any]]] = {}
        for row in read["classic"]:
            classic.setdefault(row["setting"], []).append(row)
        rows.classic = classic | rows.classic  # the first source with a setting's rows wins
    return rows


def settings_json(settings: dict[str, RunConfig]) -> str:
    """The ``settings.json`` of a report: each setting's flat config."""
    return json.dumps({name: flatten(conf) for name, conf in sorted(settings.items())}, indent=1)

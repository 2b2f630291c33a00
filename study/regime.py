"""The regime map: where personalization pays, over data per client × heterogeneity.

A sweep over data per client (``data.train_size`` of a generated source, or
``data.train_images`` of image folders split into clients) and ``data.heterogeneity`` (any
number of clients) gives one setting per cell. Each cell's row holds the BD-rate of
``personalized`` on the mean curve against each baseline (mean and spread over seeds), the
range of the per-client BD-rates, and whether its runs converged (the report's loss and
monotonicity checks), so a heatmap can say in one glance where the paper's claim holds and
how far a cell can be trusted.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from pathlib import Path
from typing import Any

from common.config import RunConfig, flatten
from common.run_folder import RunFolder
from study.bd_rate import NOT_COMPARED

GENERATED = ("synthetic", "vectors")  # sources whose clients differ by data.heterogeneity
AXES = ("data.train_size", "data.train_images", "data.heterogeneity")
GROUP_KEYS = (*AXES, "data.num_clients")


def data_per_client(flat: dict[str, Any]) -> int:
    """Training samples per client: ``data.train_images`` for image folders (0: all),
    ``data.train_size`` for a generated source."""
    key = "data.train_images" if flat.get("data.source") == "folder" else "data.train_size"
    return int(flat[key])


def _rest_of_setting(name: str, conf: RunConfig) -> str:
    """The setting's name without the map's own keys (what tells one map from another)."""
    flat = flatten(conf)
    own = {f"{k}={flat[k]}" for k in GROUP_KEYS if k in flat}
    parts = [p for p in name.split(",") if p not in own and p != "all"]
    return ",".join(parts)


def regime_rows(
    table: list[dict[str, Any]],
    convergence: list[dict[str, Any]],
    settings: dict[str, RunConfig],
) -> list[dict[str, Any]]:
    """One row per (cell, baseline) when the settings span at least two data sizes or two
    heterogeneities; none otherwise (a sweep that is not a map)."""
    cells = {name: flatten(conf) for name, conf in settings.items()}
    if all(len({c.get(k) for c in cells.values()}) < 2 for k in AXES):
        return []
    rows = []
    for name, conf in sorted(settings.items()):
        flat = cells[name]
        checks = [r for r in convergence if r.get("setting") == name and r["check"] != "rounds"]
        mine = [r for r in table if r["setting"] == name and r["seed"] == "all"]
        for anchor in dict.fromkeys(r["anchor"] for r in mine):
            mean = next(r for r in mine if r["anchor"] == anchor and r["client"] == "mean")
            clients = [
                r["bd_rate_percent"]
                for r in mine
                if r["anchor"] == anchor
                and r["client"] != "mean"
                and math.isfinite(r["bd_rate_percent"])
            ]
            rows.append(
                {
                    "map": _rest_of_setting(name, conf) or "all",
                    "setting": name,
                    "train_size": data_per_client(flat),
                    # data.heterogeneity shapes generated sources only; image folders
                    # differ by their own domains (printed as "-", plotted as such)
                    "heterogeneity": flat["data.heterogeneity"],
                    "generated": flat.get("data.source") in GENERATED,
                    "num_clients": flat["data.num_clients"],
                    "anchor": anchor,
                    "bd_rate_percent": mean["bd_rate_percent"],
                    "std_over_seeds": mean.get("std_over_seeds", math.nan),
                    "seeds_compared": mean.get("seeds_compared", 0),
                    "status": mean["status"],
                    "client_min": min(clients) if clients else math.nan,
                    "client_max": max(clients) if clients else math.nan,
                    "clients_better": sum(v < 0 for v in clients),
                    "clients_compared": len(clients),
                    "checks_passed": sum(bool(r["ok"]) for r in checks),
                    "checks": len(checks),
                }
            )
    # a baseline the sweep did not run (every cell not run or too few points) gets no map, and
    # neither does a map (or a baseline in it) of one cell: another setting, not a regime
    runs = {r["anchor"] for r in rows if r["status"] not in NOT_COMPARED}
    cells: dict[tuple[str, str], set] = {}
    for r in rows:
        cells.setdefault((r["map"], r["anchor"]), set()).add((r["train_size"], r["heterogeneity"]))
    return [r for r in rows if r["anchor"] in runs and len(cells[r["map"], r["anchor"]]) > 1]


def format_regime(rows: list[dict[str, Any]]) -> str:
    """One line per cell and baseline: the mean-curve BD-rate, its spread and the clients'."""
    if not rows:
        return ""
    lines = [
        "Regime map: BD-rate of personalized (mean curve, %; < 0: personalized saves rate)",
        f"{'vs':>13} {'clients':>7} {'data/client':>11} {'h':>5} {'mean':>8} {'std':>6} "
        f"{'client range':>16} {'better':>6} converged",
    ]
    for r in sorted(rows, key=lambda r: (r["map"], r["anchor"], r["num_clients"], *_cell(r))):
        value = r["bd_rate_percent"]
        text = f"{value:+8.2f}" if math.isfinite(value) else r["status"][:8].rjust(8)
        spread = (
            f"[{r['client_min']:+.1f}, {r['client_max']:+.1f}]"
            if math.isfinite(r["client_min"])
            else "-"
        )
        lines.append(
            f"{r['anchor']:>13} {r['num_clients']:>7} {r['train_size']:>11} "
            f"{_level(r):>5} {text} {_number(r['std_over_seeds']):>6} {spread:>16} "
            f"{r['clients_better']:>3}/{r['clients_compared']:<2} "
            f"{r['checks_passed']}/{r['checks']}"
        )
    return "\n".join(lines)


def markdown_regime(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of one map, baseline and number of clients (heterogeneity × data per
    client); a cell reads "mean ± std % [seeds] (clients that save rate / compared)", plus
    {checks passed / checks} where a convergence check failed, in bold where personalized
    saves rate on the mean curve."""
    sizes, _, grid = cell_grid(rows)
    lines = [
        "| h \\ per client | " + " | ".join(f"{s:,}" for s in sizes) + " |",
        "|---" * (len(sizes) + 1) + "|",
    ]
    for line in grid:  # every line has a cell: the levels come from the rows
        label = _level(next(c for c in line if c is not None))
        lines.append(f"| {label} | " + " | ".join(_markdown_cell(c) for c in line) + " |")
    return "\n".join(lines)


def _markdown_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "not run"
    checks = (
        f" {{{row['checks_passed']}/{row['checks']}}}"
        if row["checks_passed"] < row["checks"]
        else ""
    )
    value, std = float(row["bd_rate_percent"]), float(row["std_over_seeds"])
    if not math.isfinite(value):
        return f"{row['status']}{checks}"
    spread = f" ± {std:.1f}" if math.isfinite(std) else ""
    text = (
        f"{value:+.1f}{spread} % [{row['seeds_compared']}] "
        f"({row['clients_better']}/{row['clients_compared']}){checks}"
    )
    return f"**{text}**" if value < 0 else text


def _cell(row: dict[str, Any]) -> tuple[float, float]:
    return float(row["train_size"]), float(row["heterogeneity"])


def _level(row: dict[str, Any]) -> str:
    """The heterogeneity of a generated source's cell; "-" for real image domains."""
    return f"{row['heterogeneity']:g}" if row.get("generated", True) else "-"


def _number(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "-"


def cell_grid(
    rows: list[dict[str, Any]],
) -> tuple[list[int], list[float], list[list[dict[str, Any] | None]]]:
    """Sorted data sizes, sorted heterogeneities and the rows on that grid (``None``: not
    run) of one map, baseline and number of clients."""
    sizes = sorted({int(r["train_size"]) for r in rows})
    levels = sorted({float(r["heterogeneity"]) for r in rows})
    grid: list[list[dict[str, Any] | None]] = [[None] * len(sizes) for _ in levels]
    for r in rows:
        grid[levels.index(float(r["heterogeneity"]))][sizes.index(int(r["train_size"]))] = r
    return sizes, levels, grid


def main(argv: list[str] | None = None) -> None:
    """Print a kept report's regime map (its regime.csv) as Markdown tables, one per
    baseline and number of clients."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("report", type=Path, help="a report folder holding regime.csv")
    parser.add_argument("--map", help="which map (default: the one with the most cells)")
    args = parser.parse_args(argv)
    rows = RunFolder(args.report).read_csv("regime")
    if not rows:
        raise SystemExit(f"{args.report / 'regime.csv'}: no regime map (missing or empty)")
    name = args.map or Counter(r["map"] for r in rows).most_common(1)[0][0]
    mine = [r for r in rows if r["map"] == name]
    if not mine:
        raise SystemExit(f"{args.report / 'regime.csv'}: no map named {name!r}")
    for anchor in dict.fromkeys(r["anchor"] for r in mine):
        for count in sorted({int(r["num_clients"]) for r in mine}):
            cells = [r for r in mine if r["anchor"] == anchor and int(r["num_clients"]) == count]
            if cells:
                print(f"**vs {anchor}, {count} clients**\n\n{markdown_regime(cells)}\n")


if __name__ == "__main__":
    main()

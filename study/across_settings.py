"""Compare one method of one setting against a method of another setting of a report.

``fedntc-report`` compares methods within a setting; a kept report folder enters a merge as
one unit per setting, so its baselines cannot join settings added later. This compares any
two (setting, method) curves of a report's mean client, per seed, with the report's own
BD-rate and R + λD::

    python -m study.across_settings docs/data/protocol-fedimages \\
        "strategy.keep_optimizer_state=True,strategy.refit_steps=25:personalized" \\
        "strategy.keep_optimizer_state=True,strategy.refit_steps=0:local"
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path
from typing import Any

from study.bd_rate import bd_rate, curve
from study.lagrangian import cost
from study.sources import load_sources


def compare(
    rows: list[dict[str, Any]], test: tuple[str, str], anchor: tuple[str, str], client: str = "mean"
) -> dict[str, Any]:
    """BD-rate (mean ± std over seeds) of ``test`` against ``anchor``, both (setting, method),
    and the mean change of R + λD at matched λ with how many (λ, seed) points are lower."""
    picked = {
        side: [r for r in rows if (r["setting"], r["method"]) == side and r["client"] == client]
        for side in (test, anchor)
    }
    seeds = sorted({r["seed"] for r in picked[test]} & {r["seed"] for r in picked[anchor]})
    if not seeds:
        raise ValueError(f"no seed has runs of both {test} and {anchor} for client {client}")
    values, changes = [], []
    for seed in seeds:
        value, _ = bd_rate(*(curve(picked[s], s[1], client, seed)[:2] for s in (anchor, test)))
        values.append(value)
        costs = {s: {r["lmbda"]: cost(r) for r in picked[s] if r["seed"] == seed} for s in picked}
        changes += [
            100 * (costs[test][lm] / costs[anchor][lm] - 1)
            for lm in costs[test].keys() & costs[anchor].keys()
        ]
    finite = [v for v in values if math.isfinite(v)]  # not monotone / no overlap: no BD-rate
    return {
        "bd_rate_percent": statistics.fmean(finite) if finite else math.nan,
        "std_over_seeds": statistics.pstdev(finite) if len(finite) > 1 else math.nan,
        "bd_seeds": len(finite),
        "seeds": len(seeds),
        "cost_change_percent": statistics.fmean(changes),
        "cost_change_range": (min(changes), max(changes)),
        "lower": sum(c < 0 for c in changes),
        "points": len(changes),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="a report folder (or sweep) to read")
    parser.add_argument("test", help="SETTING:METHOD")
    parser.add_argument("anchors", nargs="+", help="SETTING:METHOD to compare against")
    args = parser.parse_args(argv)
    rows = load_sources([args.report]).results
    test = tuple(args.test.rsplit(":", 1))
    for text in args.anchors:
        r = compare(rows, test, tuple(text.rsplit(":", 1)))
        print(
            f"vs {text}: BD-rate {r['bd_rate_percent']:+.2f} ± {r['std_over_seeds']:.2f} % "
            f"({r['bd_seeds']} of {r['seeds']} seeds); R + λD {r['cost_change_percent']:+.2f} % "
            f"({r['cost_change_range'][0]:+.1f} to {r['cost_change_range'][1]:+.1f}), "
            f"lower at {r['lower']} of {r['points']}"
        )


if __name__ == "__main__":
    main()

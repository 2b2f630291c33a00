"""Bytes each client sends and receives per round, per method and model.

    python benchmarks/communication.py [--N 32 --M 48]

Counts the serialized ArrayRecord Flower sends (tensor payload plus key names); `local`
sends nothing. Down equals up: the server returns the averaged shared keys.
"""

from __future__ import annotations

import argparse

from flwr.app import ArrayRecord

from common.config import SHARED_PREFIXES, ModelConfig
from common.model import create_model
from common.split import KeySplit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--N", type=int, default=32)
    parser.add_argument("--M", type=int, default=48)
    args = parser.parse_args()
    print(
        f"{'model':>22} {'method':>13} {'keys':>5} {'bytes/round (each way)':>24} {'vs fedavg':>9}"
    )
    for name in ("bmshj2018-factorized", "bmshj2018-hyperprior"):
        state = create_model(ModelConfig(name=name, N=args.N, M=args.M)).state_dict()
        sizes = {}
        for method, shared in SHARED_PREFIXES.items():
            split = KeySplit.from_keys(state, list(shared))
            sizes[method] = (
                len(split.shared),
                ArrayRecord(split.shared_state(state)).count_bytes(),
            )
        for method, (keys, size) in sizes.items():
            ratio = size / sizes["fedavg"][1]
            print(f"{name:>22} {method:>13} {keys:5d} {size:24,d} {ratio:9.3f}")


if __name__ == "__main__":
    main()

"""Wall time per round: a loopback TLS deployment vs a Ray simulation of the same config.

    python -m benchmarks.deployment_vs_simulation [--rounds 2] [--clients 2]

Both runs use the same tiny model, image folders and local steps; the ratio is measured in
one invocation. The deployment starts a TLS SuperLink with SuperNode authentication and one
SuperNode per client on 127.0.0.1 (each message starts a ClientApp process).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from launch.simulate import CONF_DIR, run_simulation
from launch.submit import submit
from tests.deployment import Deployment, make_client_folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=2)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="fedntc-bench-"))
    for k in range(args.clients):
        make_client_folder(base / "data" / f"client-{k}", seed=k)
    common = [
        "model=tiny",
        "data=folder",
        f"data.root={base / 'data'}",
        f"data.num_clients={args.clients}",
        "data.crop_size=32",
        "data.batch_size=4",
        f"num_rounds={args.rounds}",
        "train.local_steps=20",
        "train.device=cpu",
    ]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        sim_cfg = compose("config", overrides=common)
    started = time.perf_counter()
    run_simulation(sim_cfg, base / "sim")
    sim_total = time.perf_counter() - started

    dep = Deployment(base / "deploy")
    try:
        dep.start_superlink()
        for k in range(args.clients):
            key = dep.make_key(f"client-{k}")
            dep.register(key)
            dep.start_supernode(
                str(k),
                key,
                f"partition-id={k} num-partitions={args.clients} "
                f"data-dir='{base / 'data' / f'client-{k}'}' "
                f"state-dir='{base / 'deploy' / f'state-{k}'}' device='cpu'",
            )
        dep.wait_for(lambda: dep.online_nodes() == args.clients, 60, "SuperNodes")
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            dep_cfg = compose(
                "config",
                overrides=[
                    *common,
                    f"deployment.address={dep.address}",
                    f"deployment.root_certificates={dep.certs / 'ca.crt'}",
                ],
            )
        started = time.perf_counter()
        code, _ = submit(dep_cfg, base / "deploy" / "run")
        dep_total = time.perf_counter() - started
    finally:
        dep.close()
    assert code == 0, f"deployment run failed; see {base / 'deploy' / 'run' / 'flwr-run.log'}"
    sim_round, dep_round = sim_total / args.rounds, dep_total / args.rounds
    print(f"{args.clients} clients, {args.rounds} rounds, 20 local steps, tiny model, 2 CPU cores")
    print(
        f"simulation (Ray):         {sim_total:6.1f} s total, {sim_round:5.1f} s/round "
        "(includes SuperLink + Ray start-up)"
    )
    print(f"deployment (TLS + auth):  {dep_total:6.1f} s total, {dep_round:5.1f} s/round")
    print(f"ratio deployment/simulation per round: {dep_round / sim_round:.2f}")


if __name__ == "__main__":
    main()

"""fedntc ServerApp: FedAvg over the shared transforms; personal entropy models stay home.

Methods (``strategy.method``): ``personalized`` shares ``g_a``/``g_s``, ``fedavg`` and
``fedavg_refit`` share every trainable key, ``local`` shares nothing; all run the same
rounds and local steps. ``strategy.server_optimizer`` picks Flower's FedAvg, FedAvgM or
FedAdam for the shared keys.
"""

from __future__ import annotations

import time
from logging import INFO, WARNING

from flwr.app import ArrayRecord, ConfigRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.supercore import log

from common.config import from_run_config
from common.init import initial_model
from common.run_folder import RunFolder, load_server_state, load_shared_checkpoint
from common.split import KeySplit
from common.train import round_lr
from server.polling_grid import PollingGrid
from server.progress import RoundClock
from server.results import RunRecorder, format_summary, summarize
from server.resume import previous_run
from server.strategy import server_strategy

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run ``num_rounds`` of train + coded evaluation, writing results to the run dir."""
    started = time.perf_counter()
    conf = from_run_config(context.run_config)
    model = initial_model(conf.model, seed=conf.seed, lmbda=conf.train.lmbda)
    split = KeySplit.from_keys(model.state_dict(), conf.strategy.shared_prefixes)
    if conf.resume:  # before config.json is rewritten: refuse a run of another config
        previous_run(conf, RunFolder.of(conf, context.run_id).path)
    recorder = RunRecorder(RunFolder.of(conf, context.run_id), conf)
    log(
        INFO,
        "fedntc: method=%s, %d shared / %d personal keys, run dir %s",
        conf.strategy.method,
        len(split.shared),
        len(split.personal),
        recorder.run_dir,
    )

    initial = ArrayRecord(split.shared_state(model.state_dict()))
    done, checkpoint = 0, None
    if conf.resume:
        checkpoint = recorder.folder.latest_checkpoint()
        shared, done = load_shared_checkpoint(checkpoint)
        split.check_shared_keys(shared, origin=str(checkpoint))
        initial = ArrayRecord(shared)
        log(INFO, "fedntc: resuming after round %d from %s", done, checkpoint)
    strategy = server_strategy(
        conf.strategy.server_optimizer if split.shared else "fedavg",  # local: nothing to move
        conf.strategy.server_lr,
        conf.strategy.server_momentum,
        split,
        server_tau=conf.strategy.server_tau,
        round_offset=done,
        lr_at=lambda server_round: round_lr(conf.train, server_round, conf.num_rounds),
        evaluate_every=conf.strategy.evaluate_every,
        last_round=conf.num_rounds,
        round_timeout=conf.strategy.round_timeout,
        fraction_train=conf.strategy.fraction_train,
        fraction_evaluate=conf.strategy.fraction_evaluate,
        min_train_nodes=conf.strategy.min_clients,
        min_evaluate_nodes=conf.strategy.min_clients,
        min_available_nodes=conf.strategy.min_clients,
    )
    train_config = ConfigRecord(
        {
            "lr": conf.train.lr,
            "aux-lr": conf.train.aux_lr,
            "lmbda": conf.train.lmbda,
            "local-steps": conf.train.local_steps,
            "run-uid": recorder.run_uid,
        }
    )

    if checkpoint is not None:  # the server optimizer continues where it stopped
        saved = {k: v.numpy() for k, v in load_server_state(checkpoint).items()}
        strategy.restore_server_state(saved, origin=str(checkpoint))
    if done:
        previous = recorder.previous_rows(done)
        strategy.client_rows = previous["train"] + previous["evaluate"]
        strategy.round_rows = previous["rounds"]
        strategy.failures = previous["failures"]

    clock = RoundClock(conf.num_rounds)

    def after_round(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        """Flower calls this after every round with the current shared weights."""
        if server_round > 0:
            recorder.checkpoint(server_round + done, arrays, strategy.server_state())
            recorder.write_metrics(strategy.client_rows, strategy.round_rows, strategy.failures)
            log(INFO, "%s", clock.tick(server_round + done))
        return None

    strategy.start(
        grid=PollingGrid(grid),  # replies as they arrive, not up to 3 s later
        initial_arrays=initial,
        num_rounds=max(conf.num_rounds - done, 0),
        timeout=conf.strategy.round_timeout,
        train_config=train_config,
        evaluate_config=ConfigRecord({"run-uid": recorder.run_uid}),
        evaluate_fn=after_round,
    )
    summary = summarize(
        conf,
        strategy.client_rows,
        strategy.failures,
        initial.count_bytes(),
        time.perf_counter() - started,
        strategy.round_rows,
    )
    if summary["rounds"] != conf.num_rounds:
        log(
            WARNING,
            "fedntc: results are from round %d, not the last round %d (its evaluation failed)",
            summary["rounds"],
            conf.num_rounds,
        )
    recorder.write_summary(summary)
    for line in format_summary(summary).splitlines():
        log(INFO, "%s", line)

"""Progress lines: one per round from the ServerApp, echoed by the launcher."""

import io

from launch.simulate import copy_stream
from server.progress import RoundClock, duration


def test_the_estimate_leaves_out_the_first_round_and_counts_run_wide_rounds():
    now = iter([0.0, 30.0, 40.0, 50.0])  # round 1 pays for starting the clients
    clock = RoundClock(last_round=8, clock=lambda: next(now))
    assert clock.tick(5).endswith("round 5/8 in 30 s; 30 s elapsed, about 1 min 30 s left")
    assert clock.tick(6).endswith("round 6/8 in 10 s; 40 s elapsed, about 20 s left")
    assert clock.tick(7).endswith("about 10 s left")
    assert duration(3725) == "1 h 02 min" and duration(-1) == "0 s"


def test_the_launcher_keeps_the_whole_log_and_echoes_only_progress(capsys):
    stream = io.StringIO(
        "INFO :      [ROUND 1/2]\n"
        "\x1b[92mINFO \x1b[0m:      fedntc progress: "
        "round 1/2 in 3 s; 3 s elapsed, about 3 s left\n"
        "INFO :      aggregate_train: Received 4 results\n"
    )
    log = io.StringIO()
    copy_stream(stream, log)
    assert log.getvalue() == stream.getvalue()
    assert capsys.readouterr().out == "round 1/2 in 3 s; 3 s elapsed, about 3 s left\n"

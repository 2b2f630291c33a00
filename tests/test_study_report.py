import math

import pytest

from study.bd_rate import bd_rate, bd_table, curve

RATES = [0.1, 0.2, 0.4, 0.8]
PSNRS = [28.0, 31.0, 34.0, 37.0]


def rows(method, scale, seed=0, client="0"):
    return [
        {
            "method": method,
            "lmbda": lm,
            "seed": seed,
            "client": client,
            "real_bpp": r * scale,
            "psnr": p,
        }
        for lm, r, p in zip((1, 2, 3, 4), RATES, PSNRS, strict=True)
    ]


def test_bd_rate_of_a_uniform_rate_saving():
    value, status = bd_rate((RATES, PSNRS), ([r * 0.9 for r in RATES], PSNRS))
    assert status == "ok" and value == pytest.approx(-10.0, abs=0.01)


def test_bd_rate_says_why_it_cannot_compare():
    assert bd_rate((RATES[:1], PSNRS[:1]), (RATES[:1], PSNRS[:1]))[1] == "too few points"
    value, status = bd_rate((RATES, PSNRS), (RATES, [p + 20 for p in PSNRS]))
    assert status == "no overlap" and math.isnan(value)
    bent = [28.0, 31.0, 34.0, 33.0]  # the highest rate buys less quality: not a curve yet
    value, status = bd_rate((RATES, PSNRS), (RATES, bent))
    assert status == "not monotone" and math.isnan(value)
    assert bd_rate((RATES[:3], PSNRS[:3]), (RATES[:3], bent[:3]))[1] == "ok"


def test_bd_table_over_seeds():
    data = (
        rows("local", 1.0, 0)
        + rows("local", 1.0, 1)
        + rows("fedavg", 1.0, 0)
        + rows("fedavg", 1.0, 1)
        + rows("personalized", 0.9, 0)
        + rows("personalized", 0.8, 1)
    )
    table = bd_table(data)
    overall = next(r for r in table if r["anchor"] == "local" and r["seed"] == "all")
    assert overall["bd_rate_percent"] == pytest.approx(-15.0, abs=0.05)
    assert overall["std_over_seeds"] == pytest.approx(5.0, abs=0.05)
    assert overall["seeds_compared"] == 2
    rates, psnrs, spread = curve(data, "personalized", "0")
    assert rates == pytest.approx([r * 0.85 for r in RATES]) and spread == [0.0] * 4


def write_run(root, conf, scale):
    """A finished run's files as the ServerApp writes them (config, summary, rounds)."""
    import json

    from common.config import flatten

    run = root / f"h={conf.data.heterogeneity},m={conf.strategy.method},l={conf.train.lmbda}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(flatten(conf)))
    index = [1e-4, 3e-4, 1e-3, 3e-3].index(conf.train.lmbda)
    point = {"real_bpp": RATES[index] * 10 * scale, "est_bpp": 0.0, "psnr": PSNRS[index] - 20}
    point["ms_ssim"] = math.nan
    summary = {
        "method": conf.strategy.method,
        "lmbda": conf.train.lmbda,
        "rounds": 2,
        "clients": {"0": point, "1": point},
        "mean": point,
    }
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "rounds.csv").write_text("phase,round,loss\ntrain,1,9.0\ntrain,2,8.0\n")


def test_report_splits_settings_and_plots_the_gain(tmp_path):
    """Runs that differ in heterogeneity form two settings: one BD-rate block and one
    folder of plots each, bounds for the vector source, and gain.png across settings."""
    import csv

    from common.config import DataConfig, ModelConfig, RunConfig, StrategyConfig, TrainConfig
    from study.report import build_report

    saving = {0.0: 1.0, 2.0: 0.8}  # personalized's rate relative to the baselines
    for heterogeneity, scale in saving.items():
        for method, prefixes in (
            ("personalized", ["g_a", "g_s"]),
            ("local", []),
            ("fedavg", ["*"]),
        ):
            for lmbda in (1e-4, 3e-4, 1e-3, 3e-3):
                conf = RunConfig(
                    model=ModelConfig(name="fedntc-vector", M=2, input_dim=2),
                    data=DataConfig(
                        source="vectors", num_clients=2, latent_dim=2, heterogeneity=heterogeneity
                    ),
                    train=TrainConfig(lmbda=lmbda),
                    strategy=StrategyConfig(method=method, shared_prefixes=prefixes, min_clients=2),
                )
                write_run(tmp_path / "sweep", conf, scale if method == "personalized" else 1.0)
    out, table, convergence, _, _, _ = build_report([tmp_path / "sweep"])
    settings = {"data.heterogeneity=0.0": 0.0, "data.heterogeneity=2.0": -20.0}
    for name, expected in settings.items():
        assert (out / name / "rd.png").stat().st_size > 0
        assert (out / name / "training.png").stat().st_size > 0
        row = next(
            r
            for r in table
            if r["setting"] == name
            and r["anchor"] == "local"
            and r["client"] == "mean"
            and r["seed"] == "all"
        )
        assert row["bd_rate_percent"] == pytest.approx(expected, abs=0.05)
    assert (out / "gain.png").stat().st_size > 0
    bound = list(csv.DictReader((out / "bound.csv").open()))
    assert {r["setting"] for r in bound} == set(settings) and not (out / "classic.csv").exists()
    # two rounds are too few to call a loss flat; every written curve rises with λ
    assert {r["status"] for r in convergence if r["check"] == "loss"} == {"too few rounds"}
    assert all(r["ok"] for r in convergence if r["check"] == "monotone")
    # a report over a subset of λ leaves the other runs out of every table
    out, table, _, _, _, _ = build_report(
        [tmp_path / "sweep"], tmp_path / "subset", [1e-4, 3e-4, 1e-3]
    )
    kept = {float(r["lmbda"]) for r in csv.DictReader((out / "results.csv").open())}
    assert kept == {1e-4, 3e-4, 1e-3}
    with pytest.raises(ValueError, match="no finished runs with λ"):
        build_report([tmp_path / "sweep"], tmp_path / "none", [0.5])


def test_convergence_checks_flag_moving_losses_and_broken_curves():
    from study.convergence import convergence_rows, format_convergence

    flat = [{"run": "a", "round": k, "loss": 10.0 + 0.01 * (k % 2)} for k in range(1, 9)]
    falling = [{"run": "b", "round": k, "loss": 20.0 - k} for k in range(1, 9)]
    results = rows("local", 1.0) + [
        {**r, "psnr": 30.0 - r["lmbda"]}
        for r in rows("fedavg", 1.0)  # PSNR falls with λ
    ]
    checks = convergence_rows(results, flat + falling)
    loss = {r["run"]: r for r in checks if r["check"] == "loss"}
    assert loss["a"]["ok"] and not loss["b"]["ok"] and loss["b"]["change_percent"] < -2
    curves = {r["method"]: r for r in checks if r["check"] == "monotone"}
    assert curves["local"]["ok"] and not curves["fedavg"]["ok"]
    assert curves["fedavg"]["rate_rises"] and not curves["fedavg"]["psnr_rises"]
    assert "1 of 2 runs" in format_convergence(checks)
    assert "warning" not in format_convergence(checks)  # no rounds recorded: nothing to compare
    # seeds merged from sweeps of different lengths share a setting: say so
    extended = [{**r, "rounds": 25 if r["method"] == "local" else 20} for r in results]
    [check] = [r for r in convergence_rows(extended, flat) if r["check"] == "rounds"]
    assert not check["ok"] and check["rounds"] == "20/25"
    assert "different numbers of rounds (20/25)" in format_convergence([check])


def test_loss_check_reads_only_the_rounds_at_the_final_lr():
    from study.convergence import loss_rows

    # 6 rounds at lr 1e-3 still falling, then a decay step and 4 flat rounds at 1e-4
    moving = [{"run": "a", "round": k, "loss": 20.0 - k, "lr": 1e-3} for k in range(1, 7)]
    settled = [
        {"run": "a", "round": k, "loss": 8.0 + 0.01 * (k % 2), "lr": 1e-4} for k in range(7, 11)
    ]
    [row] = loss_rows(moving + settled)
    assert row["ok"] and abs(row["change_percent"]) < 2
    falling = [{**r, "loss": 9.0 - 0.3 * i} for i, r in enumerate(settled)]
    [row] = loss_rows(moving + falling)  # still falling at 1e-4
    assert not row["ok"]
    [row] = loss_rows(moving + settled[:1])  # one round at the final lr: nothing to compare
    assert row["status"] == "too few rounds"
    # rounds without a recorded lr (older runs) neither end the phase nor count as a decay
    unknown = [{"run": "a", "round": k, "loss": 20.0 - k, "lr": None} for k in (1, 2, 3)]
    unknown += [{"run": "a", "round": k, "loss": 10.0, "lr": 1e-3} for k in range(4, 9)]
    [row] = loss_rows(unknown)
    assert row["ok"]
    [row] = loss_rows(unknown[-3:])  # 3 rounds, no decay: fewer than the 4 needed
    assert row["status"] == "too few rounds"


def test_comparison_table_separates_settings_and_seeds():
    from study.callback import comparison_table

    def summary(setting, seed, bpp):
        client = {"real_bpp": bpp, "psnr": 30.0, "ms_ssim": 0.9}
        return {
            "method": "local",
            "lmbda": 0.01,
            "mean": client,
            "clients": {"0": client},
            "bytes_per_client_per_round": {"up": 0},
            "seed": seed,
            "setting": setting,
        }

    table = comparison_table(
        [summary("h=2", 0, 0.3), summary("h=0", 1, 0.2), summary("h=0", 0, 0.1)]
    ).splitlines()
    assert table[0] == "setting: h=0" and table[4] == "setting: h=2"
    assert "seed" in table[1]
    assert [line.split()[2] for line in (table[2], table[3], table[6])] == ["0", "1", "0"]
    assert [line.split()[3] for line in (table[2], table[3], table[6])] == [
        "0.100",
        "0.200",
        "0.300",
    ]


def vector_conf(method, lmbda, seed=0, heterogeneity=1.0):
    from common.config import DataConfig, ModelConfig, RunConfig, StrategyConfig, TrainConfig

    prefixes = {"personalized": ["g_a", "g_s"], "local": [], "fedavg": ["*"]}[method]
    return RunConfig(
        model=ModelConfig(name="fedntc-vector", M=2, input_dim=2),
        data=DataConfig(source="vectors", num_clients=2, latent_dim=2, heterogeneity=heterogeneity),
        train=TrainConfig(lmbda=lmbda),
        strategy=StrategyConfig(method=method, shared_prefixes=prefixes, min_clients=2),
        seed=seed,
    )


def write_sweep(root, scale, seed=0, heterogeneity=1.0):
    """Runs of all methods at 4 λ; personalized spends ``scale`` of the baselines' rate."""
    for method in ("personalized", "fedavg", "local"):
        for lmbda in (1e-4, 3e-4, 1e-3, 3e-3):
            conf = vector_conf(method, lmbda, seed, heterogeneity)
            write_run(root, conf, scale if method == "personalized" else 1.0)
    return root


def read_csv(path):
    import csv

    return list(csv.DictReader(path.open()))


def test_report_regenerates_from_its_csvs_and_merges_seeds_trained_apart(tmp_path):
    """A report folder alone (no run directories) redraws the same tables; seed 0 kept as a
    report and seed 1 as a fresh sweep merge into one BD-rate over two seeds; the same point
    in two sources is refused, a source named twice is read once."""
    import shutil

    from study.report import build_report

    kept, _, _, _, _, _ = build_report([write_sweep(tmp_path / "seed0", 0.9, 0)], tmp_path / "kept")
    shutil.rmtree(tmp_path / "seed0")  # the report folder alone is enough from here on
    again, _, _, _, _, _ = build_report([kept], tmp_path / "again")
    for name in ("results.csv", "training.csv", "bd_rate.csv", "convergence.csv", "bound.csv"):
        assert read_csv(again / name) == read_csv(kept / name), name
    assert (again / "settings.json").read_text() == (kept / "settings.json").read_text()

    seed1 = write_sweep(tmp_path / "seed1", 0.8, 1)  # same run folder names as seed 0
    merged, table, convergence, _, _, _ = build_report([kept, seed1, seed1], tmp_path / "merged")
    overall = next(
        r for r in table if r["anchor"] == "fedavg" and r["client"] == "mean" and r["seed"] == "all"
    )
    assert overall["seeds_compared"] == 2
    assert overall["bd_rate_percent"] == pytest.approx(-15.0, abs=0.05)
    assert overall["std_over_seeds"] == pytest.approx(5.0, abs=0.05)
    assert len(read_csv(merged / "results.csv")) == 2 * 12 * 3  # seed1 named twice: read once
    assert len([r for r in convergence if r["check"] == "loss"]) == 2 * 12

    with pytest.raises(ValueError, match="in both"):
        build_report([kept, again], tmp_path / "twice")
    with pytest.raises(ValueError, match="--out"):
        build_report([kept])
    with pytest.raises(ValueError, match="one of the sources"):
        build_report([kept], kept, [1e-4])


def test_merging_renames_settings_and_reuses_classic_codec_rows(tmp_path):
    """A kept report of one heterogeneity and a sweep of another become two settings; an
    image report's JPEG/WebP rows are reused, not recomputed (its data is gone)."""
    import json

    from study.report import build_report

    kept, _, _, _, _, _ = build_report([write_sweep(tmp_path / "h1", 0.9)], tmp_path / "kept")
    out, table, _, _, _, _ = build_report(
        [kept, write_sweep(tmp_path / "h2", 0.8, 0, 2.0)], tmp_path / "r"
    )
    names = {"data.heterogeneity=1.0", "data.heterogeneity=2.0"}
    assert {r["setting"] for r in table} == names
    assert {r["setting"] for r in read_csv(out / "results.csv")} == names
    assert all((out / name / "rd.png").stat().st_size > 0 for name in names)

    settings = json.loads((kept / "settings.json").read_text())
    images = {"data.source": "folder", "data.root": str(tmp_path / "gone")}
    settings["all"] |= images | {"model.name": "bmshj2018-factorized", "model.M": 8}
    (kept / "settings.json").write_text(json.dumps(settings))
    classic = "setting,client,method,quality,real_bpp,psnr,ms_ssim\n" + "".join(
        f"all,{c},JPEG,{q},{0.1 * q},{20.5 + q},0.9\n" for c in ("0", "1", "mean") for q in (1, 2)
    )
    (kept / "classic.csv").write_text(classic)
    out, _, _, _, _, _ = build_report([kept], tmp_path / "images")
    assert (out / "classic.csv").read_text() == classic
    assert (out / "rd.png").stat().st_size > 0


def test_report_sources_that_cannot_be_read_say_why(tmp_path):
    from study.report import build_report, main

    kept, _, _, _, _, _ = build_report([write_sweep(tmp_path / "s", 0.9)], tmp_path / "kept")
    (kept / "training.csv").unlink()  # a report written before reports kept it
    with pytest.raises(ValueError, match="without training.csv.*regenerate"):
        build_report([kept], tmp_path / "x")
    (kept / "training.csv").write_text("setting\n")
    (kept / "settings.json").write_text("{not json")
    with pytest.raises(ValueError, match="settings.json: cannot read"):
        build_report([kept], tmp_path / "y")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "missing"), "--out", str(tmp_path / "z")])
    assert exit_info.value.code == 2


def test_matched_lambda_cost_compares_points_a_bd_rate_cannot():
    """At the same λ, the method with the lower test-set R + λ·255²·MSE is better; this
    still reads curves whose top stopped gaining quality (BD-rate: not monotone)."""
    from study.lagrangian import cost, format_lagrangian, lagrangian_rows, lagrangian_summary

    point = {"real_bpp": 0.5, "psnr": 30.0, "lmbda": 0.01}
    assert cost(point) == pytest.approx(0.5 + 0.01 * 255**2 * 1e-3)
    bent = [30.0, 32.0, 33.0, 32.9]  # the top point buys rate without quality
    data = [
        {**r, "psnr": bent[int(r["lmbda"]) - 1], "lmbda": r["lmbda"] / 1000}
        for method, scale, seed in (
            ("fedavg", 1.0, 0),
            ("local", 1.0, 0),
            ("personalized", 0.9, 0),
            ("fedavg", 1.0, 1),
            ("local", 1.0, 1),
            ("personalized", 0.8, 1),
        )
        for r in rows(method, scale, seed, client="mean")
    ]
    assert next(r for r in bd_table(data) if r["seed"] == 0)["status"] == "not monotone"
    points = lagrangian_rows(data)
    assert len(points) == 2 * 2 * 4  # baselines x seeds x λ
    assert all(p["change_percent"] < 0 for p in points)  # 10-20% less rate, same quality
    [fedavg] = [s for s in lagrangian_summary(points) if s["anchor"] == "fedavg"]
    assert fedavg["wins"] == fedavg["points"] == 8 and fedavg["seeds"] == 2
    assert fedavg["std_over_seeds"] > 0
    assert "lower at 8 of 8 (λ, seed)" in format_lagrangian([fedavg])


def test_a_bd_rate_over_seeds_says_how_many_seeds_gave_a_value():
    from study.bd_rate import bd_table, format_bd

    def rows(method, seed, psnrs):
        return [
            {
                "method": method,
                "client": "mean",
                "seed": seed,
                "lmbda": lm,
                "real_bpp": r,
                "psnr": p,
            }
            for lm, r, p in zip((1, 2, 3, 4), RATES, psnrs, strict=True)
        ]

    flat = [30.0] * 4  # not monotone: no BD-rate for seed 1
    data = rows("local", 0, PSNRS) + rows("personalized", 0, [p + 0.5 for p in PSNRS])
    data += rows("local", 1, flat) + rows("personalized", 1, [p + 0.5 for p in PSNRS])
    [over] = [r for r in bd_table(data) if r["seed"] == "all" and r["anchor"] == "local"]
    assert math.isfinite(over["bd_rate_percent"]) and over["seeds_compared"] == 1
    assert over["status"] == "1 of 2 seeds (not monotone in the others)"
    assert " 1/2" in format_bd([over])


def test_a_protocol_sweep_compares_every_variant_against_the_same_baselines(tmp_path):
    """A sweep over strategy.refit_steps: local and fedavg (which never refit) join both
    settings instead of forming a third, and fedavg_refit becomes an anchor where present;
    the regenerated report keeps the same membership."""
    import dataclasses

    from study.report import build_report

    sweep = tmp_path / "sweep"
    for method in ("local", "fedavg"):
        for lmbda in (1e-4, 3e-4, 1e-3, 3e-3):
            write_run(sweep, vector_conf(method, lmbda), 1.0)
    for refit, scale in ((0, 1.0), (25, 0.8)):
        for lmbda in (1e-4, 3e-4, 1e-3, 3e-3):
            conf = vector_conf("personalized", lmbda)
            conf.strategy = dataclasses.replace(conf.strategy, refit_steps=refit)
            write_run(sweep / f"refit{refit}", conf, scale)
    for lmbda in (1e-4, 3e-4, 1e-3, 3e-3):
        conf = vector_conf("fedavg", lmbda)
        strategy = dataclasses.replace(conf.strategy, method="fedavg_refit", refit_steps=25)
        write_run(sweep / "fedavg_refit", dataclasses.replace(conf, strategy=strategy), 1.25)
    out, table, _, _, _, _ = build_report([sweep])
    mean = {
        (r["setting"], r["anchor"]): r["bd_rate_percent"]
        for r in table
        if r["client"] == "mean" and r["seed"] == "all"
    }
    assert mean.keys() == {
        ("strategy.refit_steps=0", "local"),
        ("strategy.refit_steps=0", "fedavg"),
        ("strategy.refit_steps=25", "local"),
        ("strategy.refit_steps=25", "fedavg"),
        ("strategy.refit_steps=25", "fedavg_refit"),
    }
    assert mean["strategy.refit_steps=0", "local"] == pytest.approx(0.0, abs=0.05)
    assert mean["strategy.refit_steps=25", "local"] == pytest.approx(-20.0, abs=0.05)
    assert mean["strategy.refit_steps=25", "fedavg_refit"] == pytest.approx(-36.0, abs=0.05)
    again, table_again, _, _, _, _ = build_report([out], tmp_path / "again")
    assert sorted(map(str, table_again)) == sorted(map(str, table))


def test_a_sweep_over_data_and_heterogeneity_draws_the_regime_map(tmp_path):
    """Four cells (data per client × heterogeneity): one regime row per cell and baseline
    with the mean-curve BD-rate, regime.csv, regime.png, and the printed map."""
    import dataclasses

    from study.report import build_report, format_report

    scale = {(16, 0.0): 0.8, (16, 1.0): 0.9, (64, 0.0): 1.0, (64, 1.0): 1.25}
    for (size, heterogeneity), personal in scale.items():
        for method in ("personalized", "local", "fedavg"):
            for lmbda in (1e-4, 3e-4, 1e-3, 3e-3):
                conf = vector_conf(method, lmbda, heterogeneity=heterogeneity)
                conf = dataclasses.replace(
                    conf, data=dataclasses.replace(conf.data, train_size=size)
                )
                factor = personal if method == "personalized" else 1.0
                write_run(tmp_path / "sweep" / f"n{size}", conf, factor)
    report = build_report([tmp_path / "sweep"])
    cells = {
        (r["train_size"], r["heterogeneity"]): r["bd_rate_percent"]
        for r in report.regime
        if r["anchor"] == "local"
    }
    assert cells.keys() == scale.keys()
    for cell, factor in scale.items():
        assert cells[cell] == pytest.approx(100 * (factor - 1), abs=0.05)
    assert {r["anchor"] for r in report.regime} == {"local", "fedavg"}
    assert all(r["num_clients"] == 2 and r["clients_compared"] == 2 for r in report.regime)
    assert len(read_csv(report.out / "regime.csv")) == 8
    assert (report.out / "regime.png").stat().st_size > 0
    text = format_report(report)
    assert "Regime map" in text and "+25.00" in text and "-20.00" in text


def test_the_kept_regime_map_prints_as_markdown_tables(tmp_path, capsys):
    """``python -m study.regime REPORT``: one Markdown table per baseline from regime.csv,
    h down and data per client across, saving cells in bold, the seeds and clients in
    brackets; a folder without a map is refused by name."""
    from study.regime import main

    def row(size, h, anchor, value, status="ok"):
        return {
            "map": "all", "setting": f"{size},{h}", "train_size": size, "heterogeneity": h,
            "generated": True, "num_clients": 4, "anchor": anchor, "bd_rate_percent": value,
            "std_over_seeds": 0.5, "seeds_compared": 2, "status": status, "client_min": -1,
            "client_max": 1, "clients_better": 3, "clients_compared": 4, "checks_passed": 17,
            "checks": 18,
        }  # fmt: skip

    rows = [row(16, 0.0, "local", -12.34), row(64, 0.0, "local", 2.0)]
    rows += [row(16, 1.0, "local", float("nan"), "not monotone"), row(16, 0.0, "fedavg", -3.0)]
    from common.run_folder import RunFolder

    RunFolder(tmp_path).write_csv("regime", rows)
    main([str(tmp_path)])
    text = capsys.readouterr().out
    local, fedavg = text.split("**vs fedavg, 4 clients**")
    assert "| h \\ per client | 16 | 64 |" in local
    assert "| 0 | **-12.3 ± 0.5 % [2] (3/4) {17/18}** | +2.0 ± 0.5 % [2] (3/4) {17/18} |" in local
    assert "| 1 | not monotone {17/18} | not run |" in local
    assert "| 0 | **-3.0 ± 0.5 % [2] (3/4) {17/18}** |" in fedavg
    with pytest.raises(SystemExit, match="no regime map"):
        main([str(tmp_path / "nothing")])


def test_the_zero_contour_skips_cells_that_were_not_run(tmp_path, monkeypatch):
    """An L-shaped map (data axis at h=1, heterogeneity axis at 16 per client): the cells not
    run are masked for the contour, not read as 0 % (which drew lines through them)."""
    import matplotlib.axes
    import numpy as np

    from study.plots.regime import plot_regime

    def row(size, h, value):
        return {
            "map": "all", "setting": f"{size},{h}", "train_size": size, "heterogeneity": h,
            "num_clients": 4, "anchor": "local", "bd_rate_percent": value,
            "std_over_seeds": float("nan"), "seeds_compared": 1, "status": "ok",
            "client_min": value - 1, "client_max": value + 1, "clients_better": 2,
            "clients_compared": 4, "checks_passed": 18, "checks": 18,
        }  # fmt: skip

    cells = [(16, 0.0, -11.0), (16, 0.5, -14.0), (16, 1.0, -10.0), (64, 1.0, -1.0)]
    cells += [(256, 1.0, 1.0), (16, 2.0, 40.0)]
    drawn = []
    original = matplotlib.axes.Axes.contour
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "contour",
        lambda ax, z, **kw: drawn.append(z) or original(ax, z, **kw),
    )
    plot_regime([row(*c) for c in cells], tmp_path / "regime.png")
    assert (tmp_path / "regime.png").stat().st_size > 0
    (values,) = drawn
    assert np.ma.count_masked(values) == 4 * 3 - len(cells)  # the cells not run
    assert values[3, 0] == 40.0 and np.ma.is_masked(values[3, 2])  # h=2 only at 16


def test_a_kept_regime_report_regenerates_the_same_map(tmp_path):
    """A map whose one cell is a refit ablation (personalized with refit 0 and 25, local
    beside both) and whose other cells have refit 25 only: a report folder alone redraws
    the same cells. Before, a cell whose settings.json config was local's lost the refit
    key on regeneration, and the ablation cell fell out of the map."""
    import dataclasses

    from study.report import build_report

    def conf_of(method, lmbda, size, refit):
        conf = vector_conf(method, lmbda)
        data = dataclasses.replace(conf.data, train_size=size)
        strategy = dataclasses.replace(conf.strategy, refit_steps=refit)
        return dataclasses.replace(conf, data=data, strategy=strategy)

    for lmbda in (1e-4, 3e-4, 1e-3, 3e-3):
        for refit in (0, 25):
            root = tmp_path / "sweep" / f"n256-refit{refit}"
            write_run(root, conf_of("personalized", lmbda, 256, refit), 0.9)
        write_run(tmp_path / "sweep" / "n256", conf_of("local", lmbda, 256, 0), 1.0)
        for size in (16, 64):
            write_run(
                tmp_path / "sweep" / f"n{size}", conf_of("personalized", lmbda, size, 25), 0.8
            )
            write_run(tmp_path / "sweep" / f"n{size}", conf_of("local", lmbda, size, 25), 1.0)
    first = build_report([tmp_path / "sweep"], tmp_path / "kept")
    again = build_report([tmp_path / "kept"], tmp_path / "again")
    cells = {(r["map"], r["train_size"], r["anchor"]) for r in first.regime}
    assert {size for _, size, _ in cells} == {16, 64, 256}
    assert read_csv(again.out / "regime.csv") == read_csv(first.out / "regime.csv")
    assert (again.out / "settings.json").read_text() == (first.out / "settings.json").read_text()


def test_a_sweep_from_the_base_reports_the_base_alone_and_each_method_vs_jpeg_webp(tmp_path):
    """model.init=base: the report codes the shipped base each λ started from on every
    client's test images (method ``base``, an anchor of the BD-rate table), compares every
    method with JPEG and WebP, and a kept report redraws it all without the weights."""
    import dataclasses
    import shutil

    from common.config import DataConfig, ModelConfig
    from common.evaluate import evaluate_coded
    from common.init import initial_model, save_base
    from common.model import create_model
    from study.report import build_report

    models = tmp_path / "models"
    models.mkdir()
    size = ModelConfig(N=8, M=12)
    for seed, lmbda in enumerate((1e-4, 1e-3)):
        meta = {"name": size.name, "N": 8, "M": 12, "lmbda": lmbda}
        dest = models / f"bmshj2018-factorized-N8-M12-l{lmbda}.pt"
        save_base(create_model(size, seed=seed).state_dict(), meta, dest)
    model = dataclasses.replace(size, init="base", base_dir=str(models))
    data = DataConfig(source="bundled", num_clients=2, max_side=48)
    for method in ("personalized", "fedavg", "local"):
        for lmbda in (1e-4, 3e-4, 1e-3, 3e-3):
            conf = dataclasses.replace(vector_conf(method, lmbda), model=model, data=data)
            write_run(tmp_path / "sweep", conf, 0.9 if method == "personalized" else 1.0)
    report = build_report([tmp_path / "sweep"], tmp_path / "kept")
    base = [r for r in read_csv(report.out / "results.csv") if r["method"] == "base"]
    assert len(base) == 4 * 3  # 4 λ x (2 clients + mean)
    from common.data import load_client_data

    images = load_client_data(data, 0, 0).test
    expected = evaluate_coded(initial_model(model, seed=0, lmbda=1e-4), images)
    for lmbda in ("0.0001", "0.0003"):  # 3e-4 is nearer 1e-4 than 1e-3 (log scale)
        row = next(r for r in base if r["lmbda"] == lmbda and r["client"] == "0")
        assert float(row["psnr"]) == pytest.approx(expected["psnr"])
        assert row["run"] == "bmshj2018-factorized-N8-M12-l0.0001.pt"
    assert {r["anchor"] for r in report.table} == {"local", "fedavg", "base"}
    assert all(r["ok"] for r in report.convergence if r["check"] == "rounds")  # base: no rounds
    versus = read_csv(report.out / "bd_rate_classic.csv")
    assert {r["method"] for r in versus} == {"personalized", "fedavg", "local", "base"}
    assert {k for k in versus[0] if k.startswith("vs_")} == {"vs_JPEG", "vs_WebP"}

    # a base rewritten in place is coded anew, not taken from this process's earlier coding
    def base_psnr(report_dir, lmbda):
        rows = read_csv(report_dir / "results.csv")
        return next(
            float(r["psnr"])
            for r in rows
            if r["method"] == "base" and r["client"] == "0" and r["lmbda"] == lmbda
        )

    meta = {"name": size.name, "N": 8, "M": 12, "lmbda": 1e-4}
    save_base(create_model(size, seed=7).state_dict(), meta, models / base[0]["run"])
    redone = build_report([tmp_path / "sweep"], tmp_path / "redone")
    assert base_psnr(redone.out, "0.0001") != base_psnr(report.out, "0.0001")
    assert base_psnr(redone.out, "0.001") == base_psnr(report.out, "0.001")
    shutil.rmtree(models)  # the kept report needs neither weights nor a recomputation
    again = build_report([report.out], tmp_path / "again")
    assert read_csv(again.out / "results.csv") == read_csv(report.out / "results.csv")


def test_the_regime_map_of_split_image_folders_runs_over_training_images_per_client():
    """Image folders split into clients: the map's data axis is data.train_images."""
    from common.config import DataConfig, RunConfig, StrategyConfig
    from study.regime import regime_rows

    settings, table = {}, []
    for images, bd in ((1, -12.0), (4, 3.0)):
        data = DataConfig(
            source="folder", root="/data", num_clients=8, clients_per_folder=2, train_images=images
        )
        name = f"data.train_images={images}"
        settings[name] = RunConfig(data=data, strategy=StrategyConfig(min_clients=8))
        table += [
            {"setting": name, "seed": "all", "anchor": "local", "client": client,
             "bd_rate_percent": value, "status": "ok"}
            for client, value in (("mean", bd), ("0", bd - 1), ("1", bd + 1))
        ]  # fmt: skip
    rows = regime_rows(table, [], settings)
    assert [(r["train_size"], r["bd_rate_percent"], r["clients_better"]) for r in rows] == [
        (1, -12.0, 2),
        (4, 3.0, 0),
    ]
    assert {r["map"] for r in rows} == {"all"}
    # image folders differ by their own domains, not by data.heterogeneity: not printed as h
    from study.regime import format_regime

    assert not any(r["generated"] for r in rows)
    lines = format_regime(rows).splitlines()[2:]
    assert [line.split()[3] for line in lines] == ["-", "-"]


def test_settings_that_test_on_the_same_images_share_one_jpeg_webp_coding(tmp_path):
    """Clients split from one folder, at several data.train_images: the test images are the
    folder's, so the report codes JPEG/WebP on them once, not once per setting."""
    import dataclasses

    from common.config import DataConfig, ModelConfig
    from study import baselines
    from tests.test_data import write_domains

    write_domains(tmp_path, train=4, test=2)
    data = DataConfig(source="folder", root=str(tmp_path), num_clients=4, clients_per_folder=2)
    confs = [
        dataclasses.replace(
            vector_conf("personalized", 1e-3),
            model=ModelConfig(N=8, M=12),
            data=dataclasses.replace(data, train_images=n),
        )
        for n in (1, 2)
    ]
    clients = ["0", "1", "2", "3"]
    first = baselines.classic_rows(confs[0], clients)
    cached = len(baselines._CLASSIC)
    second = baselines.classic_rows(confs[1], clients)
    assert second == first and len(baselines._CLASSIC) == cached
    # each client has its folder's two test images; the mean pools all four sets
    assert {r["client"] for r in first} == {"0", "1", "2", "3", "mean"}
    one = next(r for r in first if r["client"] == "0" and r["method"] == "JPEG")
    pooled = next(r for r in first if r["client"] == "mean" and r["method"] == "JPEG")
    assert pooled["num_pixels"] == 4 * one["num_pixels"]
    second[0]["real_bpp"] = -1.0  # callers get copies: the cache is not theirs to change
    assert baselines.classic_rows(confs[1], clients) == first


def test_r_d_panels_of_many_clients_wrap_into_rows_named_by_domain(tmp_path):
    """8 clients + the mean: 2 rows of 5 panels, not one strip of 9 that shrinks every panel."""
    from PIL import Image

    from study.plots.rd import panel_grid, plot_rd

    assert [panel_grid(n) for n in (2, 5, 6, 9, 17)] == [(1, 2), (1, 5), (2, 3), (2, 5), (4, 5)]
    clients = [str(k) for k in range(8)]
    rows = [
        {"client": c, "method": m, "lmbda": lm, "seed": 0, "real_bpp": lm * 40, "psnr": 30 + lm}
        for c in [*clients, "mean"]
        for m in ("personalized", "local")
        for lm in (0.003, 0.01)
    ]
    names = {c: f"domain-{c}" for c in clients}
    plot_rd(rows, [], [], clients, tmp_path / "rd.png", "images", names)
    width, height = Image.open(tmp_path / "rd.png").size
    assert width / height == pytest.approx((5 * 4) / (2 * 3.6), rel=0.05)


def test_seeds_without_the_baseline_are_not_counted_as_failed_comparisons():
    """fedavg ran in seed 0 only, personalized and local in seeds 0 and 1: vs fedavg the
    value is seed 0's and the status ok, not '1 of 2 seeds (too few points ...)'."""
    from study.bd_rate import NOT_RUN

    data = rows("local", 1.0, 0) + rows("local", 1.0, 1) + rows("fedavg", 1.0, 0)
    data += rows("personalized", 0.9, 0) + rows("personalized", 0.8, 1)
    over = {r["anchor"]: r for r in bd_table(data) if r["seed"] == "all"}
    assert over["fedavg"]["status"] == "ok" and over["fedavg"]["seeds_total"] == 1
    assert over["fedavg"]["bd_rate_percent"] == pytest.approx(-10.0, abs=0.05)
    assert over["local"]["seeds_total"] == 2 and over["local"]["status"] == "ok"
    per_seed = [r for r in bd_table(data) if r["anchor"] == "fedavg" and r["seed"] != "all"]
    assert [r["seed"] for r in per_seed] == [0]

    no_fedavg = [r for r in data if r["method"] != "fedavg"]
    no_fedavg += rows("fedavg", 1.0, 2)  # a seed personalized did not run
    [over] = [r for r in bd_table(no_fedavg) if r["seed"] == "all" and r["anchor"] == "fedavg"]
    assert over["status"] == NOT_RUN and math.isnan(over["bd_rate_percent"])


def test_a_method_is_compared_with_a_baseline_of_another_setting():
    """study.across_settings: 10 % less rate at the same PSNR in setting b than local in
    setting a, in both seeds; a pair with no common seed is refused."""
    from study.across_settings import compare

    data = [{**r, "setting": "a"} for s in (0, 1) for r in rows("local", 1.0, s, "mean")]
    data += [{**r, "setting": "b"} for s in (0, 1) for r in rows("personalized", 0.9, s, "mean")]
    result = compare(data, ("b", "personalized"), ("a", "local"))
    assert result["bd_rate_percent"] == pytest.approx(-10.0, abs=0.05)
    assert (result["seeds"], result["lower"], result["points"]) == (2, 8, 8)
    assert result["cost_change_percent"] < 0
    with pytest.raises(ValueError, match="no seed"):
        compare(data, ("b", "personalized"), ("b", "local"))

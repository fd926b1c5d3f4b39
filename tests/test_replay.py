"""bench/replay.py and bench/table.py on a small synthetic learning-curve table (seconds)."""

from __future__ import annotations

import csv
import json
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BENCH, load_bench

from lorasearch.spaces import SearchSpace

table_py = load_bench("table")
replay_py = load_bench("replay")

R = 27  # rungs 1, 3, 9, 27 at eta = 3
CHANCE = 0.5


def synthetic_table(folder: Path, n: int = 24, seed: int = 0) -> Path:
    """Real draws of the space (lora, vera, dora), made-up curves: each configuration rises
    from chance towards its own final metric; cross-entropy falls as the metric rises."""
    rng = random.Random(seed)
    variants = ["dora", "lora", "vera"]
    path = folder / "synthetic.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(table_py.COLUMNS)
        for index, variant, _knobs, drawn in table_py.draws(
            n, R, seed, SearchSpace.default(variants).to_json()
        ):
            params = int(10 ** rng.uniform(3, 6))
            final = CHANCE + rng.uniform(0.05, 0.4)
            tau = rng.uniform(2, 12)
            curve = [(s, CHANCE + (final - CHANCE) * (1 - math.exp(-s / tau))) for s in range(1, R + 1)]  # fmt: skip
            best = max(m for _, m in curve)
            for step, metric in curve:
                writer.writerow([index, variant, params, 0.1, step, f"{metric:.6f}",
                                 f"{0.7 - metric / 2:.6f}", f"{best:.6f}", f"{best:.6f}",
                                 json.dumps(drawn, sort_keys=True)])  # fmt: skip
        writer.writerow([n, "lora", 0, "", 0, "", "", "", "", json.dumps({"variant": "lora"})])
    meta = {"steps": R, "chance": CHANCE, "full_params": 22_713_986, "dev_size": 500,
            "eval_every": 1, "columns": table_py.COLUMNS}  # fmt: skip
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return replay_py.Table.load(synthetic_table(tmp_path_factory.mktemp("table")))


def test_the_table_loads(table):
    assert len(table.configs) == 25 and table.configs[-1].failed
    assert table.steps == R and sorted(table.configs[0].curve) == list(range(1, R + 1))


def test_full_budget_strategies_spend_exactly_trials_times_r(table):
    for strategy in ("random", "tpe"):
        history = replay_py.run(table, strategy, seed=1, trials=6, eta=3, min_steps=1)
        steps = [s for s, _ in history]
        assert steps == [R * i for i in range(len(steps))]  # every trial costs R
        assert steps[-1] == 6 * R


def test_asha_spends_fewer_steps_per_trial_and_keeps_a_front(table):
    for strategy in [s for s in replay_py.STRATEGIES if s.startswith("asha")]:
        history = replay_py.run(table, strategy, seed=1, trials=6, eta=3, min_steps=1)
        costs = np.diff([s for s, _ in history])
        assert len(costs) > 6  # more configurations started for the same budget
        assert costs.mean() < R
        rungs = (0, 1, 3, 9, R)  # a job trains from a rung (0: a new configuration) to a rung
        assert set(costs) <= {b - a for a in rungs for b in rungs if b > a}
        assert history[-1][1] > 0  # some reached R: a front exists
        assert history[-1][0] <= 6 * R + R


def test_early_stopping_never_spends_more(table):
    history = replay_py.run(table, "early_stop", seed=1, trials=6, eta=3, min_steps=1)
    assert all(0 < b - a <= R for (a, _), (b, _) in zip(history, history[1:], strict=False))


def test_hypervolume_matches_the_search():
    assert replay_py.hypervolume([], CHANCE, 1000) == 0.0
    assert replay_py.hypervolume([(0.4, 10)], CHANCE, 1000) == 0.0  # below chance
    one = replay_py.hypervolume([(0.9, 10)], CHANCE, 1000)
    assert one == pytest.approx(0.4 * 2)  # (0.9 - 0.5) x (3 - 1) decades
    assert replay_py.hypervolume([(0.9, 10), (0.6, 100)], CHANCE, 1000) == pytest.approx(one)


def test_replay_reports_ratios_and_plots(table, tmp_path):
    strategies = ["random", "tpe", "asha_loss"]
    grid, curves, budget, fronts = replay_py.replay(table, strategies, seeds=2, trials=6, eta=3,
                                                    min_steps=1, points=51)  # fmt: skip
    assert budget == 6 * R and curves["random"].shape == (2, 51)
    for strategy in strategies:  # each seed's front holds the final hypervolume
        assert len(fronts[strategy]) == 2
        for front, hv in zip(fronts[strategy], curves[strategy][:, -1], strict=True):
            assert replay_py.hypervolume(front, CHANCE, table.full_params) == pytest.approx(hv)
    assert (np.diff(curves["tpe"], axis=1) >= 0).all()  # hypervolume never falls
    ratios = replay_py.headline(grid, curves, budget, "asha_loss")
    assert set(ratios) == {"random", "tpe"}
    assert all(r is None or 0 <= r <= 1 for r in ratios.values())
    png = tmp_path / "hv.png"
    replay_py.plot(grid, curves, png, "synthetic")
    assert png.stat().st_size > 1000


def test_the_front_and_its_span():
    found = [
        (27, 0.9, 50_000),
        (54, 0.8, 5_000),
        (81, 0.85, 200_000),  # dominated by the first
        (108, 0.95, 2_000_000),
        (120, 0.4, 100),  # below chance
        (300, 0.99, 1_000),  # after the budget
    ]
    front = replay_py.front_of(found, CHANCE, 200)
    assert front == [(0.8, 5_000), (0.9, 50_000), (0.95, 2_000_000)]
    assert replay_py.span(front) == (pytest.approx(math.log10(400)), {0, 1, 3})
    assert replay_py.span([]) == (0.0, set())
    mean, std, share = replay_py.spans({"a": [front, [], [(0.9, 20_000)]]})["a"]
    assert mean == pytest.approx(math.log10(400) / 3)
    assert std == pytest.approx(np.std([math.log10(400), 0, 0]))
    assert share == [pytest.approx(1 / 3), pytest.approx(2 / 3), 0.0, pytest.approx(1 / 3)]


def test_candidate_promotions_keep_large_configurations():
    from lorasearch.search.fidelity import RungPoint

    sizes = [1_000, 2_000, 3_000, 1_000_000, 2_000_000, 3_000_000]
    signals = [-0.5, -0.85, -0.7, -0.6, -0.9, -0.95]
    variants = ["vera", "lora", "lora", "lora", "vera", "vera"]
    table = replay_py.Table(
        [
            replay_py.Config(i, v, n, {})
            for i, (v, n) in enumerate(zip(variants, sizes, strict=True))
        ],
        R,
        CHANCE,
        10**7,
        500,
    )
    points = [RungPoint(i, s, n) for i, (s, n) in enumerate(zip(signals, sizes, strict=True))]

    def chosen(strategy, k, **kw):
        return sorted(p.number for p in replay_py.promoter(table, strategy)(points, 3, k, **kw))

    # the search's: 0 dominates all, then 2 adds most to the rung's front: two small ones
    assert chosen("asha_loss", 0) == chosen("asha_loss", 1) == [0, 2]
    # one per params decade (two decades of three): the best small and the best large one
    for strategy in ("asha_strata", "asha_shared"):
        assert chosen(strategy, 0) == chosen(strategy, 1) == [0, 3]
    assert chosen("asha_union", 0) == [0, 2, 3]  # both
    # the lowest rung only: per decade / one per variant by signal alone; above, as the search
    for strategy in ("asha_shared1", "asha_variant"):
        assert chosen(strategy, 0) == [0, 3] and chosen(strategy, 1) == [0, 2]
    # at the end of a search each group sends on at least min(n, eta): all six; shared keeps
    # the search's count, ceil(6 / 3) and at least 3, third by the rung's order
    for strategy in ("asha_strata", "asha_union", "asha_variant"):
        assert chosen(strategy, 0, final=True) == list(range(6))
    assert chosen("asha_loss", 0, final=True) == chosen("asha_shared", 0, final=True) == [0, 2, 3]


def test_rungs_must_be_evaluated(tmp_path):
    path = synthetic_table(tmp_path, n=6)
    table = replay_py.Table.load(path)
    for config in table.configs:
        config.curve.pop(9, None)  # rung 9 of 27 was never evaluated
    from lorasearch.errors import LorasearchError

    with pytest.raises(LorasearchError, match="rungs"):
        replay_py.run(table, "asha_loss", seed=0, trials=2, eta=3, min_steps=1)


def test_spearman_and_correlations():
    x = [0.1, 0.4, 0.2, 0.9, 0.5]
    assert table_py.spearman(x, [1, 4, 2, 9, 5]) == pytest.approx(1.0)
    assert table_py.spearman(x, [-v for v in x]) == pytest.approx(-1.0)
    assert math.isnan(table_py.spearman([1, 2], [1, 2]))
    rows = [
        {"config": c, "step": s, "dev_metric": m, "dev_loss": -m, "best_dev": b}
        for c, b in enumerate([0.6, 0.7, 0.8, 0.9])
        for s, m in ((1, 0.5 + c / 100), (2, b))
    ]
    assert table_py.correlations(rows) == [(1, 4, pytest.approx(1.0), pytest.approx(1.0)),
                                           (2, 4, pytest.approx(1.0), pytest.approx(1.0))]  # fmt: skip


def test_draws_are_reproducible():
    first = list(table_py.draws(5, 300, 3))
    assert first == list(table_py.draws(5, 300, 3))
    assert first != list(table_py.draws(5, 300, 4))


def test_signals_from_another_table_replace_the_rungs_only(tmp_path):
    """``--signals``: the curve below R comes from the other table, the finals stay."""
    from dataclasses import replace

    from lorasearch.errors import LorasearchError

    table = replay_py.Table.load(synthetic_table(tmp_path, n=6))
    (tmp_path / "other").mkdir()
    other = replay_py.Table.load(synthetic_table(tmp_path / "other", n=6))  # the same draws

    def stopped(c):  # other signals below R (a --stop table: no finals); draw 1 diverged there
        signals = {s: (1 - metric, -loss) for s, (metric, loss) in c.curve.items() if s <= 9}
        return replace(c, curve={} if c.index == 1 else signals, best=math.nan)

    flipped = [stopped(c) for c in other.configs]
    merged = table.with_signals(replace(other, configs=flipped))
    for mine, theirs, was in zip(merged.configs, flipped, table.configs, strict=True):
        assert (mine.best, mine.params) == (was.best, was.params) or was.failed
        if was.failed or mine.index == 1:
            assert mine.failed
            continue
        for step, value in mine.curve.items():
            assert value == (theirs.curve[step] if step <= 9 else was.curve[step])
    with pytest.raises(LorasearchError, match="lacks configurations"):
        table.with_signals(replace(other, configs=flipped[:3]))
    moved = [replace(c, drawn={**c.drawn, "variant": "x"}) if c.index == 2 else c for c in flipped]
    with pytest.raises(LorasearchError, match=r"drew other configurations at \[2\]"):
        table.with_signals(replace(other, configs=moved))
    with pytest.raises(LorasearchError, match="R = 81"):
        table.with_signals(replace(other, steps=81))


def test_correlations_against_another_tables_finals():
    rows = [  # a --stop table: signals, no finals
        {"config": c, "step": 1, "dev_metric": 0.5 + c / 100, "dev_loss": c, "best_dev": math.nan}
        for c in range(4)
    ]
    finals = [{"config": c, "step": 2, "best_dev": 0.9 - c / 10} for c in range(4)]
    [(step, n, metric, loss)] = table_py.correlations(rows)  # no finals of its own
    assert (step, n) == (1, 0) and math.isnan(metric) and math.isnan(loss)
    assert table_py.correlations(rows, finals) == [(1, 4, pytest.approx(-1.0), pytest.approx(1.0))]


def test_a_stop_table_trains_only_to_its_step(toy_data, tiny_bert):
    from conftest import toy_fixed

    fixed = toy_fixed(toy_data, tiny_bert, steps=12, eval_every=2, warmup_ratio=0.5)
    result, losses = table_py.train_one(fixed, "lora", {"rank": 2, "lr": 1e-3}, stop=4)
    assert [p.step for p in result.curve] == [2, 4] and result.steps == 4
    assert result.test_metric is None and len(losses) == 2
    full, _ = table_py.train_one(fixed, "lora", {"rank": 2, "lr": 1e-3})
    assert [(p.dev_metric, p.dev_loss) for p in full.curve[:2]] == [
        (p.dev_metric, p.dev_loss) for p in result.curve
    ]  # the same schedule: a prefix of the full run
    assert full.test_metric is not None


def test_the_ratios_bootstrap_interval():
    grid, budget = np.linspace(0, 100, 101), 100
    ramps = np.array([np.clip(grid / k, 0, 1) for k in (20, 40, 60)])  # reach 0.5 at 10, 20, 30
    peer = np.full((3, 101), 0.5)  # its final mean: 0.5 whatever the resample
    same = {"asha_loss": ramps[[1, 1, 1]], "random": peer}
    ratio = replay_py.headline(grid, same, budget)["random"]
    assert ratio == pytest.approx(0.2)
    assert replay_py.interval(grid, same, budget, "asha_loss", "random") == (ratio, ratio)
    mixed = {"asha_loss": ramps, "random": peer}
    ratio = replay_py.headline(grid, mixed, budget)["random"]
    low, high = replay_py.interval(grid, mixed, budget, "asha_loss", "random")
    assert 0.1 <= low < ratio < high <= 0.3  # between the fastest and the slowest seed alone
    never = {"asha_loss": ramps, "random": peer * 4}  # a target of 2: never reached
    assert replay_py.interval(grid, never, budget, "asha_loss", "random") == (math.inf, math.inf)


def test_a_subset_is_seeded_and_sized(table):
    from lorasearch.errors import LorasearchError

    part = table.subset(10)
    assert len(part.configs) == 10 and part.steps == table.steps
    assert [c.index for c in part.configs] == [c.index for c in table.subset(10).configs]
    assert {c.index for c in part.configs} <= {c.index for c in table.configs}
    assert table.subset(len(table.configs)).configs == table.configs
    with pytest.raises(LorasearchError, match="--subset"):
        table.subset(0)


def test_refits_side_by_side_match_refits_in_turn(toy_data, tiny_bert, monkeypatch):
    """``refit_check --jobs 2``: the same results, in the jobs' order, as one process."""
    import importlib

    from conftest import toy_fixed

    monkeypatch.syspath_prepend(str(BENCH))  # spawned processes import refit_check by name
    refit_check, Config = (
        importlib.import_module("refit_check"),
        importlib.import_module("replay").Config,
    )
    fixed = toy_fixed(toy_data, tiny_bert, steps=4, eval_every=2)
    lora = Config(0, "lora", 0, {"variant": "lora", "lora.rank": 2, "lora.lr": 1e-3})
    vera = Config(1, "vera", 0, {"variant": "vera", "vera.vera_rank": 16})
    jobs = [(lora, 1), (vera, 1), (lora, 2)]
    apart = [(r.dev_metric, r.test_metric, r.curve[-1].dev_loss)
             for r in refit_check.refit(fixed, jobs, 2)]  # fmt: skip
    alone = [(r.dev_metric, r.test_metric, r.curve[-1].dev_loss)
             for r in refit_check.refit(fixed, jobs, 1)]  # fmt: skip
    assert apart == pytest.approx(alone, abs=1e-5)
    assert apart[0] != pytest.approx(apart[2], abs=1e-9)  # seeds differ: the order is the jobs'


def test_a_recorded_command_drops_the_option_and_its_value():
    argv = ["bench/table.py", "--shard", "1/2", "--configs", "64", "--shard=0/2", "--stop", "27"]
    kept = ["bench/table.py", "--configs", "64", "--stop", "27"]
    assert table_py.without(argv, "--shard") == kept
    assert table_py.without(["--save", "x.md", "--seeds", "3"], "--save") == ["--seeds", "3"]


def test_a_saved_output_names_the_command_that_reproduces_it(tmp_path, monkeypatch):
    saved = tmp_path / "out.md"
    argv = ["/repo/bench/refit_check.py", "t.csv", "--save", str(saved), "--jobs", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    table_py.save_output(saved, "3 min; 2026-11-27, commit abc", "| a |\n")
    assert saved.read_text() == (
        "`python bench/refit_check.py t.csv --jobs 2` (3 min; 2026-11-27, commit abc)\n\n| a |\n"
    )


def test_a_refit_builds_the_knobs_the_table_trained():
    """refit_check: a table's drawn params become knobs as the search makes them."""
    import optuna

    refit_check = load_bench("refit_check")
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    _, made = SearchSpace.default(["delta_lora"]).suggest(trial, 240)  # as table.py draws
    knobs = refit_check.knobs_of(replay_py.Config(0, "delta_lora", 0, trial.params), 240)
    assert knobs == made and "alpha_ratio" not in knobs
    fraction = trial.params["delta_lora.delta_start"]
    assert knobs["delta_start"] == int(fraction * 240) and isinstance(knobs["delta_start"], int)
    assert knobs["alpha"] == pytest.approx(trial.params["delta_lora.alpha_ratio"] * knobs["rank"])


def test_a_failed_refit_is_reported_and_the_others_counted(
    toy_data, tiny_bert, capsys, monkeypatch
):
    """refit_check: a refit the library refuses (a non-finite loss) is one line; the means and
    the paired gaps count the seeds that trained."""
    from types import SimpleNamespace

    from conftest import toy_fixed

    from lorasearch.training.trainer import NonFiniteLoss

    refit_check = load_bench("refit_check")

    def diverge(*args, **kwargs):
        raise NonFiniteLoss("non-finite loss (nan) at step 7\nmore")

    monkeypatch.setattr(refit_check, "train_one", diverge)
    fixed = toy_fixed(toy_data, tiny_bert, steps=4, eval_every=2)
    lora = replay_py.Config(0, "lora", 0, {"variant": "lora", "lora.rank": 2})
    assert list(refit_check.refit(fixed, [(lora, 1)], 1)) == ["non-finite loss (nan) at step 7"]

    def run(dev: float, test: float):
        return SimpleNamespace(dev_metric=dev, test_metric=test)

    pick, best = replay_py.Config(31, "lora", 0, {}), replay_py.Config(0, "delta_lora", 0, {})
    done = {
        31: {1: run(0.87, 0.84), 2: run(0.88, 0.85), 3: run(0.86, 0.83)},
        0: {1: run(0.86, 0.86), 2: "non-finite loss (nan) at step 7", 3: run(0.88, 0.84)},
    }
    refit_check.report(done, pick, best, 0.855, [1, 2, 3])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "refit of the pick (31), seeds 1,2,3: test 0.8400 ± 0.0100 (median 0.8400), dev 0.8700"
    )
    assert lines[1] == (
        "refit of the table's best (0), seeds 1,3: test 0.8500 ± 0.0141 (median 0.8500), dev "
        "0.8700 (1 more failed)"
    )
    assert lines[2].endswith("0.8550: +1.50 pt, NOT within 0.5 pt")
    assert lines[3] == (
        "the pick's refit vs the table's best refit 0.8500: +1.00 pt, NOT within 0.5 pt; by "
        "medians +1.00 pt, NOT within 0.5 pt"
    )
    assert (
        lines[4]
        == "paired by seed (the table's best refit minus the pick's, test): +2.00, +1.00 pt"
    )
    assert lines[5] == "paired mean +1.50 pt, standard error 0.50 pt, median +1.50 pt over 2 seeds"


def test_like_keeps_only_the_draws_the_other_table_holds(table):
    from dataclasses import replace

    from lorasearch.errors import LorasearchError

    other = table.subset(7, seed=3)
    same = table.like(other)
    assert [c.index for c in same.configs] == [c.index for c in other.configs]
    assert same.configs == [c for c in table.configs if c.index in {c.index for c in other.configs}]
    with pytest.raises(LorasearchError, match="lacks draws"):
        other.like(table)
    drifted = replace(other, configs=[replace(c, drawn={**c.drawn, "x": 1}) for c in other.configs])
    with pytest.raises(LorasearchError, match="other configurations"):
        table.like(drifted)


def test_a_refit_check_reuses_an_earlier_outputs_refits(tmp_path):
    """refit_check --reuse: the refit lines of an earlier output of the same table are taken
    (a failed or reused line is not); another table's output is one error."""
    from lorasearch.errors import LorasearchError

    refit_check = load_bench("refit_check")
    table = Path("bench/tables/agnews.csv")
    saved = tmp_path / "agnews_refit.md"
    saved.write_text(
        "`python bench/refit_check.py bench/tables/agnews.csv` (53 min)\n\n"
        "bench/tables/agnews.csv: 64 configurations, R = 243, budget 16 x R\n\n"
        "refit of 30, seed 1: dev 0.8480, test 0.8771\n"
        "refit of 61, seed 2: failed: non-finite loss (nan) at step 7\n"
        "refit of 61, seed 3: dev 0.8540, test 0.8816 (from elsewhere.md)\n"
        "refit of 30, seed 1, seeds 1,2: test 0.8744 ± 0.0038\n"
    )
    found = refit_check.reused([saved], table)
    assert list(found) == [(30, 1)]
    result, source = found[30, 1]
    assert (result.dev_metric, result.test_metric, source) == (0.848, 0.8771, saved)
    with pytest.raises(LorasearchError, match="is not a refit check of bench/tables/sst2.csv"):
        refit_check.reused([saved], Path("bench/tables/sst2.csv"))
    with pytest.raises(LorasearchError, match="no such file"):
        refit_check.reused([tmp_path / "nope.md"], table)
    # a line the check prints is one it reads back
    saved.write_text(f"{table}: 1 configuration\n{refit_check.refit_line(44, 8, result)}\n")
    assert refit_check.reused([saved], table)[44, 8][0] == result

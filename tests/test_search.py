"""The search: valid spaces, up-front counts, the budget, early stopping, resume, failures."""

import json
import math
import warnings

import optuna
import pytest
from mlflow.tracking import MlflowClient

from lorasearch.adapters import VARIANTS, build_adapter
from lorasearch.cli import main
from lorasearch.errors import LorasearchError
from lorasearch.search import early_stop
from lorasearch.search import objective as objective_module
from lorasearch.search.config import Fixed, SearchConfig
from lorasearch.search.early_stop import Finished, stop_reason
from lorasearch.search.pareto import hypervolume
from lorasearch.search.records import StudyRecord, TrialRecord, front, trial_records
from lorasearch.search.report import study_report
from lorasearch.search.storage import load_study
from lorasearch.search.study import run_search
from lorasearch.spaces import SearchSpace, load_space_file
from lorasearch.training.trainer import TrainConfig
from lorasearch.training.trial import (
    DataConfig,
    ModelConfig,
    Trial,
    load_data,
    planned_counts,
    run_trial,
)

FAST = TrainConfig(steps=20, batch_size=16, max_length=24, eval_every=10)


def _fixed(toy_data, tiny_bert, **train):
    config = TrainConfig(
        **(
            {k: getattr(FAST, k) for k in ("steps", "batch_size", "max_length", "eval_every")}
            | train
        )
    )
    return Fixed(
        DataConfig(data=str(toy_data), text_column="sentence"),
        ModelConfig(model=str(tiny_bert)),
        config,
    )


def _search(fixed, tmp_path, trials, name="s", **config):
    space = config.pop("space", None) or SearchSpace.default(config.pop("variants", None))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    return run_search(
        fixed, SearchConfig(trials=trials, space=space, storage=storage, study_name=name, **config)
    )


# --- the space ------------------------------------------------------------------------------------


def test_space_yields_only_valid_configurations_for_every_variant():
    space = SearchSpace.default()
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0)
    )
    seen = set()
    for _ in range(400):
        trial = study.ask()
        variant, knobs = space.suggest(trial, total_steps=100)
        build_adapter(variant, **knobs)  # raises on any invalid knob
        for name, knob in space.knobs[variant].items():
            value = trial.params[f"{variant}.{name}"]
            assert value in knob.choices if knob.choices else knob.low <= value <= knob.high
        seen.add(variant)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert seen == set(VARIANTS)


def test_space_file_narrows_fixes_and_rejects_typos(tmp_path):
    good = tmp_path / "space.toml"
    good.write_text(
        'variants = "lora,vera"\n[all]\nlr = { low = 1e-4, high = 1e-3 }\n[vera]\nvera_rank = 64\n'
    )
    space = load_space_file(good, None)
    assert space.variants == ["lora", "vera"]
    assert space.knobs["vera"]["vera_rank"].fixed == 64
    assert (space.knobs["lora"]["lr"].low, space.knobs["lora"]["lr"].high) == (1e-4, 1e-3)
    typo = tmp_path / "typo.yaml"
    typo.write_text("lora:\n  rnak: 8\n")
    with pytest.raises(LorasearchError, match="'rnak' is not a knob of lora"):
        load_space_file(typo, None)
    out_of_range = tmp_path / "bad.toml"
    out_of_range.write_text("[lora_drop]\ndrop_threshold = { low = 0.5, high = 1.5 }\n")
    with pytest.raises(LorasearchError, match="drop_threshold must be in"):
        load_space_file(out_of_range, ["lora_drop"]).validate(100)


# --- counts before training -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v != "lora_drop"])
def test_up_front_count_equals_the_trained_models(toy_data, tiny_bert, variant):
    knobs = {"adalora": {"target_rank": 2, "init_rank": 3}, "vera": {"vera_rank": 16}}.get(
        variant, {"rank": 3}
    )
    fixed = _fixed(toy_data, tiny_bert)
    trial = Trial(fixed.data, fixed.model, build_adapter(variant, **knobs), fixed.train)
    planned = planned_counts(trial)
    assert planned.trainable == run_trial(trial).trainable_params


def test_lora_drop_up_front_count_is_its_upper_bound(toy_data, tiny_bert):
    fixed = _fixed(toy_data, tiny_bert)
    adapter = build_adapter("lora_drop", rank=3, drop_threshold=0.5, drop_steps=5)
    trial = Trial(fixed.data, fixed.model, adapter, fixed.train)
    bound = planned_counts(trial).trainable
    assert bound == 3 * 960 + 66 and run_trial(trial).trainable_params < bound


# --- the study ------------------------------------------------------------------------------------


def test_budget_rejects_without_training(toy_data, tiny_bert, tmp_path, monkeypatch):
    fixed = _fixed(toy_data, tiny_bert)
    lowest = build_adapter("lora", rank=2, targets="qv", layers="top-1")  # the space's smallest
    smallest = planned_counts(Trial(fixed.data, fixed.model, lowest, fixed.train)).trainable
    middle = build_adapter("lora", rank=8, targets="attention", layers="all")  # some fit, some not
    budget = planned_counts(Trial(fixed.data, fixed.model, middle, fixed.train)).trainable
    trained = []
    monkeypatch.setattr(
        objective_module,
        "run_trial",
        lambda spec, **kw: trained.append(spec) or run_trial(spec, **kw),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study = _search(fixed, tmp_path, 6, variants=["lora"], max_params=budget, seed=0)
    assert not [w for w in caught if "constraints_func" in str(w.message)]  # Optuna 5's way
    records = [t for t in trial_records(study) if t.planned_params is not None]  # (a draw the
    over = [t for t in records if t.planned_params > budget]  # tiny model cannot take fails)
    assert over, "the draw should include configurations over the budget"
    for trial in over:
        assert trial.state == "PRUNED" and "over budget" in trial.reason
        assert trial.steps_used == 0
    # every trial tells the sampler how far over the budget it is (a constraint: <= 0 fits)
    for trial in study.trials:
        planned = TrialRecord.of(trial).planned_params
        if planned is None:  # failed before counting: PiSSA at a rank above hidden 32
            assert "needs rank <=" in TrialRecord.of(trial).reason
            continue
        assert trial.constraints == {"max_params": planned - budget}
    assert trained, "the seeded draw should include configurations within the budget"
    assert len(trained) == len(records) - len(over)  # only configurations that fit trained
    # A budget below every configuration of the space is refused before any study exists.
    with pytest.raises(LorasearchError, match="below the smallest configuration in the space"):
        _search(fixed, tmp_path, 1, name="tiny-budget", variants=["lora"], max_params=smallest - 1)
    assert "tiny-budget" not in optuna.get_all_study_names(f"sqlite:///{tmp_path / 'study.db'}")


def test_early_stopping_stops_exactly_the_trials_the_rule_names(toy_data, tiny_bert, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(
        study_name="es", storage=storage, directions=["maximize", "minimize"]
    )
    everywhere = {"lora.targets": "all", "lora.layers": "all"}  # as before placement was drawn
    everywhere |= {"lora.alpha_ratio": 2.0, "lora.rslora": False, "lora.init": "kaiming"}  # α = 2r
    study.enqueue_trial({"lora.rank": 16, "lora.lr": 5e-3} | everywhere)  # learns fast
    for rank in (16, 32, 2):
        study.enqueue_trial({"lora.rank": rank, "lora.lr": 1e-4} | everywhere)  # slow learners
    fixed = _fixed(toy_data, tiny_bert, steps=60, eval_every=20)
    study = _search(
        fixed, tmp_path, 4, name="es", variants=["lora"], margin=0.05, fidelity=False
    )  # early stopping alone (rungs: tests/test_multifidelity.py)
    trials = trial_records(study)
    states = [t.state for t in trials]
    # The slow ones at least as large as trial 0 stop; the cheaper slow one may not be stopped.
    assert states == ["COMPLETE", "PRUNED", "PRUNED", "COMPLETE"], states
    for trial in trials:  # replay the rule on the recorded curves, trial by trial
        before = [
            Finished(t.number, int(t.values[1]), t.curve, t.values[0])
            for t in trials
            if t.number < trial.number and t.state == "COMPLETE"
        ]
        curve, params = trial.curve, trial.planned_params
        dev_size = len(load_data(fixed.data).dev)
        fired = [  # the rule judges every evaluation but the last (search/objective.py)
            s
            for s in sorted(curve)
            if s < 60 and stop_reason(s, curve[s], params, before, 0.05, dev_size)
        ]
        if trial.state == "PRUNED":
            assert fired and fired[0] == max(curve) == trial.steps_used
            assert trial.reason.startswith("trails trial")
        else:
            assert not fired
    assert study_report(study)["steps_used"] < 4 * 60


def test_rule_needs_a_cheaper_trial_ahead_by_the_margin():
    done = [Finished(0, 1_000, {10: 0.80, 20: 0.85}, 0.86)]
    assert stop_reason(10, 0.70, 2_000, done, 0.05) is not None
    assert stop_reason(10, 0.70, 500, done, 0.05) is None  # the finished one costs more
    assert stop_reason(10, 0.78, 2_000, done, 0.05) is None  # within the margin
    assert stop_reason(30, 0.10, 2_000, done, 0.05) is None  # no point at that step
    assert stop_reason(20, 0.79, 1_000, done, 0.05) == early_stop.stop_reason(
        20, 0.79, 1_000, done, 0.05
    )


def test_early_stopping_judges_neither_rungs_nor_the_steps_a_continuation_passed():
    early_stop_judges = objective_module.early_stop_judges
    assert early_stop_judges(20, (60,), 0) and not early_stop_judges(60, (60,), 0)  # no rungs
    rungs = (10, 30, 90)
    assert [s for s in (10, 20, 30, 60, 90) if early_stop_judges(s, rungs, 0)] == [20, 60]
    assert [s for s in (20, 40, 60) if early_stop_judges(s, rungs, 30)] == [40, 60]


def test_a_lead_within_the_dev_sets_noise_stops_nothing():
    """At its first evaluation a cheap trial was 0.587 by chance, a running one 0.543 (chance);
    on 300 dev examples that lead is noise (2 standard errors = 0.081), so nothing stops."""
    done = [Finished(6, 127_490, {7: 0.587, 14: 0.600}, 0.607)]
    assert stop_reason(7, 0.543, 127_490, done, 0.01) is not None  # no noise model: stopped
    assert stop_reason(7, 0.543, 127_490, done, 0.01, dev_size=300) is None
    assert early_stop.noise(0.587, 0.543, 300) == pytest.approx(
        2 * math.sqrt(2 * 0.565 * 0.435 / 300)
    )
    # A lead well beyond the noise still stops, and more data makes smaller leads count.
    clear = [Finished(1, 1_000, {10: 0.80}, 0.82)]
    assert stop_reason(10, 0.60, 2_000, clear, 0.01, dev_size=300) is not None
    assert stop_reason(10, 0.75, 2_000, clear, 0.01, dev_size=300) is None
    assert stop_reason(10, 0.75, 2_000, clear, 0.01, dev_size=10_000) is not None


def test_resume_keeps_old_trials_and_adds_new(toy_data, tiny_bert, tmp_path):
    fixed = _fixed(toy_data, tiny_bert)
    first = study_report(_search(fixed, tmp_path, 2, variants=["lora", "vera"]))
    second = study_report(_search(fixed, tmp_path, 2, variants=["lora", "vera"]))
    kept = len(first["trials"])  # two configurations and the promotions they made
    assert sum(t["continues"] is None for t in first["trials"]) == 2
    assert sum(t["continues"] is None for t in second["trials"]) == 4
    assert [t["number"] for t in second["trials"]] == list(range(len(second["trials"])))
    assert second["trials"][:kept] == [
        dict(t, pareto=s["pareto"]) for t, s in zip(first["trials"], second["trials"], strict=False)
    ]
    assert second["trials"][kept]["params"] != first["trials"][0]["params"]  # no replayed draws
    other = _fixed(toy_data, tiny_bert)
    other.data = DataConfig(data=str(toy_data), text_column="sentence", train_samples=50)
    with pytest.raises(LorasearchError, match="searches another task or model"):
        _search(other, tmp_path, 1)


def test_a_failing_trial_is_recorded_and_the_study_goes_on(
    toy_data, tiny_bert, tmp_path, monkeypatch
):
    def flaky(spec, **kw):
        if spec.adapter.config.rank == 4:
            raise RuntimeError("boom")
        return run_trial(spec, **kw)

    monkeypatch.setattr(objective_module, "run_trial", flaky)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(
        study_name="f", storage=storage, directions=["maximize", "minimize"]
    )
    for rank in (2, 4, 3):
        study.enqueue_trial({"lora.rank": rank, "lora.lr": 1e-3})
    report = study_report(
        _search(_fixed(toy_data, tiny_bert), tmp_path, 3, name="f", variants=["lora"],
                fidelity=False)
    )  # fmt: skip
    assert [t["state"] for t in report["trials"]] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert report["trials"][1]["reason"] == "RuntimeError: boom"


def test_report_shape_and_hypervolume(toy_data, tiny_bert, tmp_path):
    study = _search(_fixed(toy_data, tiny_bert), tmp_path, 3, variants=["lora", "lora_fa"])
    report = study_report(study)
    for row in report["trials"]:
        assert {"number", "state", "params", "values", "variant", "steps_used"} <= set(row)
    assert set(report["pareto"]) == {t.number for t in study.best_trials}
    assert report["pareto"] == [t.number for t in front(study)]
    assert report["hypervolume"] == pytest.approx(report["hypervolume_history"][-1])
    assert report["hypervolume_history"] == sorted(report["hypervolume_history"])  # never shrinks


def test_hypervolume_by_hand():
    def trial(metric, params):
        return TrialRecord.of(optuna.trial.create_trial(values=[metric, params]))

    # Reference (0.5, log10 1e6 = 6). Points: (0.9, 1e3) and (0.8, 1e2).
    trials = [trial(0.9, 1e3), trial(0.8, 1e2), trial(0.4, 10)]  # the last is below chance
    expected = (0.9 - 0.5) * (6 - 3) + (0.8 - 0.5) * (3 - 2)
    assert hypervolume(trials, 0.5, 10**6) == pytest.approx(expected)
    assert math.isclose(hypervolume([], 0.5, 10**6), 0.0)


# --- the command line -----------------------------------------------------------------------------


def test_search_and_pareto_commands(capsys, toy_data, tiny_bert, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--data", str(toy_data), "--text-column", "sentence", "--model", str(tiny_bert)]
    fast = ["--steps", "10", "--eval-every", "5", "--batch-size", "16", "--max-length", "24"]
    assert main(["search", *args, *fast, "--trials", "2", "--variants", "lora,dora", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first["trials"]) == 2 and (tmp_path / "lorasearch.db").is_file()
    study = first["study"]
    assert main(["pareto", "--study", study, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pareto"] == first["pareto"]
    assert main(["pareto", "--study", study]) == 0
    assert "Pareto front" in capsys.readouterr().out
    assert StudyRecord.of(load_study(study, None)).metric_name == "accuracy"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--trials", "0"], "--trials must be >= 1"),
        (["--trials", "1", "--timeout", "-5"], "--timeout must be > 0"),
        (["--trials", "1", "--sampler", "cmaes"], "unknown sampler"),
        (["--trials", "1", "--storage", "nonsense"], "malformed --storage"),
        (
            ["--trials", "1", "--storage", "postgresql://u:secret@127.0.0.1:1/x"],
            "cannot open storage",
        ),
        (["--trials", "1", "--variants", "lora,lorax"], "unknown variant 'lorax'"),
    ],
)
def test_search_bad_input_is_one_line(capsys, toy_data, tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--data", str(toy_data), "--text-column", "sentence", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "secret" not in err[0]
    assert not (tmp_path / "lorasearch.db").exists()  # nothing written


def test_refit_retrains_the_front_and_reproduces_the_search_at_seed_0(
    toy_data, tiny_bert, tmp_path
):
    from lorasearch.search.refit import refit_front

    study = _search(_fixed(toy_data, tiny_bert), tmp_path, 3, variants=["lora", "vera"])
    same_budget = refit_front(study, seeds=1, steps=None)
    by_size = sorted(study.best_trials, key=lambda t: t.values[1])  # cheapest first
    assert [r.number for r in same_budget] == [t.number for t in by_size]
    for refit in same_budget:
        assert refit.summary()["dev_mean"] == pytest.approx(refit.search_dev_metric, abs=1e-9)
    longer = refit_front(study, seeds=2, steps=30)
    assert all(len(r.results) == 2 and r.results[0].steps == 30 for r in longer)
    assert all(r.summary()["dev_std"] >= 0 for r in longer)
    with pytest.raises(LorasearchError, match="--seeds must be >= 1"):
        refit_front(study, seeds=0, steps=None)


def test_a_refit_seed_that_diverges_is_reported_and_the_others_kept(
    toy_data, tiny_bert, tmp_path, monkeypatch, capsys, tracking_store
):
    """A refit seed whose loss turns non-finite costs only itself: the other seeds and the other
    configurations are refit, the means count the seeds that trained, and the CLI names the
    failed seed as it fails and under its table, exit 0."""
    from lorasearch.search import refit as refit_module
    from lorasearch.training.trainer import NonFiniteLoss

    study = _search(_fixed(toy_data, tiny_bert), tmp_path, 3, variants=["lora", "vera"])
    cheapest = min(study.best_trials, key=lambda t: t.values[1]).number
    real = refit_module.run_trial
    calls = []

    def diverging(spec):
        calls.append(spec.train.seed)
        if len(calls) in (2, 3):  # the cheapest configuration's seeds 1 and 2
            raise NonFiniteLoss(f"non-finite loss (nan) at step {len(calls)}")
        return real(spec)

    monkeypatch.setattr(refit_module, "run_trial", diverging)
    refits = {r.number: r.summary() for r in refit_module.refit_front(study, 3, None)}
    assert len(calls) == 3 * len(study.best_trials)  # every seed of every configuration ran
    first = refits[cheapest]
    assert first["failed"] == [
        "seed 1: non-finite loss (nan) at step 2",
        "seed 2: non-finite loss (nan) at step 3",
    ]
    assert first["seeds"] == 1 and first["dev_std"] == 0.0
    assert first["dev_mean"] == pytest.approx(first["search_dev_metric"], abs=1e-9)  # seed 0
    assert all(r["seeds"] == 3 and not r["failed"] for n, r in refits.items() if n != cheapest)
    calls.clear()
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["refit", "--study", "s", "--storage", storage]) == 0
    out, err = capsys.readouterr()
    experiment = MlflowClient(tracking_store).get_experiment_by_name("s")
    runs = MlflowClient(tracking_store).search_runs([experiment.experiment_id])
    failed = {r.data.tags["seed"]: r for r in runs if r.data.tags.get("state") == "FAILED"}
    assert sorted(failed) == ["1", "2"] and all(r.info.status == "FAILED" for r in failed.values())
    assert failed["2"].data.tags["reason"] == "non-finite loss (nan) at step 3"
    assert "test_accuracy" not in failed["2"].data.metrics
    assert (
        f"refit trial {cheapest} seed 2 failed: non-finite loss (nan) at step 3; the other runs "
        "go on"
    ) in err.splitlines()
    assert (
        f"trial {cheapest} ({first['variant']}): seed 1: non-finite loss (nan) at step 2; seed 2: "
        "non-finite loss (nan) at step 3 (the means are over the other 1)"
    ) in out
    calls.clear()
    assert main(["refit", "--study", "s", "--storage", storage, "--json"]) == 0
    rows = {r["number"]: r for r in json.loads(capsys.readouterr().out)["refits"]}
    assert rows[cheapest]["failed"] == first["failed"] and rows[cheapest]["seeds"] == 1


def test_a_refit_is_kept_in_the_study_seed_by_seed(
    toy_data, tiny_bert, tmp_path, monkeypatch, capsys
):
    """The study holds the refit as it runs: a refit stopped in its second seed keeps the first
    (marked unfinished), and ``best --by refit`` refuses a study never refit in one line."""
    from lorasearch.search import refit as refit_module
    from lorasearch.search.records import refit_record

    study = _search(_fixed(toy_data, tiny_bert), tmp_path, 3, variants=["lora", "vera"])
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["best", "--study", "s", "--storage", storage, "--by", "refit"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "study 's' has not been refit" in err[0]
    real, calls = refit_module.run_trial, []

    def stopped(spec):
        calls.append(spec.train.seed)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(spec)

    monkeypatch.setattr(refit_module, "run_trial", stopped)
    with pytest.raises(KeyboardInterrupt):
        refit_module.refit_front(study, seeds=2, steps=None)
    record = refit_record(load_study("s", storage))
    cheapest = min(front(study), key=lambda t: t.values[1])
    assert not record.finished and (record.steps, record.seeds) == (None, 2)
    (config,) = record.configs
    assert (config.number, config.lr_scale, config.picked) == (cheapest.number, 1.0, True)
    assert [s.seed for s in config.seeds] == [0] and config.seeds[0].run_id is None
    assert config.seeds[0].dev_metric == pytest.approx(cheapest.values[0], abs=1e-9)
    assert config.seeds[0].test_metric == pytest.approx(cheapest.test_metric, abs=1e-9)
    assert config.knobs == cheapest.knobs


def test_refit_at_lr_scales_trains_each_rate_and_marks_the_best_mean_dev(
    toy_data, tiny_bert, tmp_path, monkeypatch, capsys
):
    """``--lr-scales 2,0.5``: each Pareto configuration is refit at its searched rate and at half
    and twice it (the optimiser gets exactly that rate), and per configuration the scale whose
    seeds reached the best mean dev, and only it, is marked picked; the CLI shows the same."""
    from lorasearch.search import refit as refit_module

    study = _search(_fixed(toy_data, tiny_bert), tmp_path, 3, variants=["lora", "vera"])
    real, rates = refit_module.run_trial, []

    def recording(spec):
        rates.append(spec.adapter.config.lr)
        return real(spec)

    monkeypatch.setattr(refit_module, "run_trial", recording)
    refits = refit_module.refit_front(study, seeds=2, steps=20, lr_scales=[2.0, 0.5])
    front = sorted(study.best_trials, key=lambda t: t.values[1])
    assert [(r.number, r.lr_scale) for r in refits] == [
        (t.number, s) for t in front for s in (0.5, 1.0, 2.0)
    ]
    searched_lr = {t.number: t.knobs["lr"] for t in refit_module.records.front(study)}
    for refit in refits:
        searched = searched_lr[refit.number]
        assert refit.knobs["lr"] == pytest.approx(searched * refit.lr_scale, rel=1e-12)
        assert len(refit.results) == 2 and refit.results[0].steps == 20
    assert rates == pytest.approx([r.knobs["lr"] for r in refits for _ in range(2)], rel=1e-12)
    for trial in front:
        rows = [r.summary() for r in refits if r.number == trial.number]
        assert sum(r["picked"] for r in rows) == 1
        best = max(r["dev_mean"] for r in rows)
        assert next(r for r in rows if r["picked"])["dev_mean"] == best
    losses = {
        r.lr_scale: r.results[0].curve[-1].train_loss for r in refits if r.number == front[0].number
    }
    assert len({round(loss, 6) for loss in losses.values()}) == 3  # each rate trained differently
    rates.clear()
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["refit", "--study", "s", "--storage", storage, "--seeds", "1", "--lr-scales", "2"]
    assert main([*args, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["refits"]
    assert [r["lr_scale"] for r in rows] == [1.0, 2.0] * len(front)
    assert sum(r["picked"] for r in rows) == len(front)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "lr ×" in out and "* = the best mean dev per trial" in out
    assert "kept in the study: `lorasearch best --study s` now ranks by it" in out
    assert sum(line.count(" 2* ") + line.count(" 1* ") for line in out.splitlines()) == len(front)


@pytest.mark.parametrize(
    ("scales", "message"),
    [
        ("0", "--lr-scales must be positive numbers, got 0"),
        ("0.5,-2", "--lr-scales must be positive numbers, got -2"),
        ("half", "--lr-scales takes numbers separated by commas, got 'half'"),
        (
            "1e9",
            "at lr × 1e+09: lr must be in (0, 1)",
        ),  # checked for every configuration before any training
    ],
)
def test_bad_lr_scales_are_one_line_before_any_training(
    toy_data, tiny_bert, tmp_path, monkeypatch, capsys, scales, message
):
    from lorasearch.search import refit as refit_module

    _search(_fixed(toy_data, tiny_bert), tmp_path, 2, variants=["lora"])
    monkeypatch.setattr(refit_module, "run_trial", lambda spec: pytest.fail("trained"))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["refit", "--study", "s", "--storage", storage, "--lr-scales", scales]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_several_tasks_run_one_study_each_and_end_with_best_per_task(tiny_bert, tmp_path, capsys):
    from conftest import toy_rows, write_tsv

    root = tmp_path / "tasks"
    for task, seed in (("sst2", 0), ("cola", 10)):
        folder = root / task
        folder.mkdir(parents=True)
        for split, n, offset in (("train", 300, 0), ("dev", 80, 1), ("test", 80, 2)):
            write_tsv(folder / f"{split}.tsv", toy_rows(n, seed + offset, labels=("0", "1")))
    storage = f"sqlite:///{tmp_path / 'multi.db'}"
    args = ["search", "--task", "sst2", "--task", "cola", "--data", str(root), "--model",
            str(tiny_bert), "--variants", "lora", "--trials", "2", "--steps", "10",
            "--batch-size", "16", "--max-length", "24", "--storage", storage, "--study", "m"]  # fmt: skip
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [row["study"] for row in out["tasks"]] == ["m-sst2", "m-cola"]
    for row, metric in zip(out["tasks"], ("accuracy", "mcc"), strict=True):
        study = load_study(row["study"], storage)
        assert row["metric_name"] == metric and len(study.trials) == 2
        best = max(study.best_trials, key=lambda t: (t.values[0], -t.values[1]))
        assert row["best"]["trial"] == best.number
    # Mismatched --data counts are one clear error, before anything runs.
    bad = [
        "search",
        "--task",
        "sst2",
        "--task",
        "cola",
        "--data",
        "a",
        "--data",
        "b",
        "--data",
        "c",
    ]
    assert main([*bad, "--trials", "1"]) == 2
    assert "3 --data" in capsys.readouterr().err
    assert main(["train", "--task", "sst2", "--task", "cola"]) == 2
    assert "train takes one --task" in capsys.readouterr().err

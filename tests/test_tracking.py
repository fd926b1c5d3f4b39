"""MLflow as the record: parent and child runs read back, failures survived, picking, exporting."""

import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import optuna
import pytest
from conftest import CHROMIUM, page_text, render, toy_fixed
from mlflow.tracking import MlflowClient
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from lorasearch.cli import main
from lorasearch.errors import LorasearchError
from lorasearch.search import records
from lorasearch.search.config import SearchConfig
from lorasearch.search.records import StudyRecord, TrialRecord, trial_records
from lorasearch.search.report import study_report
from lorasearch.search.select import choose
from lorasearch.search.storage import load_study
from lorasearch.search.study import run_search
from lorasearch.spaces import SearchSpace
from lorasearch.tracking import MlflowTracking, NoTracking, Tracking, make_tracking

HERE = Path(__file__).parent
STEPS = 20


def _fixed(toy_data, tiny_bert):
    return toy_fixed(toy_data, tiny_bert, steps=STEPS, eval_every=10)


def _search(fixed, tmp_path, trials, name="t", tracking_uri=None, **config):
    """A search recorded in MLflow at ``tracking_uri`` (None: the test's own store)."""
    space = SearchSpace.default(config.pop("variants", ["lora", "vera", "lora_fa"]))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    tracker = make_tracking(tracking_uri, config.pop("tracking", True))
    config.setdefault("fidelity", False)  # every trial to the end: these tests are about records
    return run_search(
        fixed,
        SearchConfig(trials=trials, space=space, storage=storage, study_name=name, **config),
        tracker=tracker,
    )


def _runs(client: MlflowClient, study: optuna.Study):
    experiment = client.get_experiment_by_name(study.study_name)
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("lorasearch.role") == "study"]
    children = [r for r in runs if r.data.tags.get("lorasearch.role") == "trial"]
    return parents, children


@pytest.fixture(scope="module")
def searched(tiny_bert, toy_data, tmp_path_factory):
    """One small search recorded in its own store (shared by the read-back tests)."""
    folder = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    study = _search(_fixed(toy_data, tiny_bert), folder, 4, tracking_uri=uri, early_stop=False)
    return study, MlflowClient(uri), folder, uri


def test_parent_and_one_child_per_trial_hold_every_field(searched):
    study, client, _, _ = searched
    parents, children = _runs(client, study)
    assert len(parents) == 1 and len(children) == len(study.trials) == 4
    parent = parents[0]
    assert StudyRecord.of(study).parent_run_id == parent.info.run_id
    assert parent.data.params["study"] == study.study_name
    assert parent.data.params["metric"] == "accuracy"
    assert json.loads(parent.data.tags["space"]).keys() == {"lora", "vera", "lora_fa"}
    assert parent.data.tags["sampler"] == "tpe"
    assert parent.info.status == "FINISHED"

    by_run = {r.info.run_id: r for r in children}
    for trial in trial_records(study):
        run = by_run[trial.run_id]
        data = run.data
        assert data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert data.tags["state"] == trial.state == "COMPLETE"
        assert run.info.status == "FINISHED"
        assert data.params["variant"] == trial.variant
        for knob, value in trial.knobs.items():
            assert data.params[knob] == (value if isinstance(value, str) else json.dumps(value))
        if trial.test_metric is None:  # test is scored only for trials on the front
            assert "test_accuracy" not in data.metrics
        else:
            assert data.metrics["test_accuracy"] == pytest.approx(trial.test_metric)
        assert data.metrics["final_dev_accuracy"] == pytest.approx(trial.values[0])
        assert data.metrics["trainable_params"] == trial.values[1]
        assert (
            data.metrics["adapter_params"] + data.metrics["head_params"]
            == data.metrics["trainable_params"]
        )
        assert data.metrics["stored_params"] == trial.stored_params
        assert data.metrics["steps_used"] == STEPS
        assert data.metrics["steps_per_second"] > 0 and data.metrics["peak_memory_mb"] > 0
        assert data.tags["device"] == "cpu"
        losses = client.get_metric_history(run.info.run_id, "train_loss")
        assert [m.step for m in sorted(losses, key=lambda m: m.step)] == list(range(1, STEPS + 1))
        curve = client.get_metric_history(run.info.run_id, "dev_accuracy")
        assert {m.step: m.value for m in curve} == pytest.approx(trial.curve)
        losses = client.get_metric_history(run.info.run_id, "dev_loss")  # the rungs' signal
        assert {m.step: m.value for m in losses} == pytest.approx(trial.dev_loss_curve)
        assert trial.dev_loss_curve and set(trial.dev_loss_curve) == set(trial.curve)
        stored = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "adapter")}
        assert {"adapter_config.json", "adapter_model.safetensors", "lorasearch.json"} <= stored


def test_pareto_tags_hypervolume_curve_and_plots_match_the_study(searched):
    study, client, _, _ = searched
    parents, children = _runs(client, study)
    front = {t.number for t in study.best_trials}
    for run in children:
        assert run.data.tags["pareto"] == (
            "true" if int(run.data.tags["trial"]) in front else "false"
        )
    report = study_report(study)
    history = client.get_metric_history(parents[0].info.run_id, "hypervolume")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
        report["hypervolume_history"]
    )
    names = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"pareto.png", "pareto.html"} <= names
    html = Path(client.download_artifacts(parents[0].info.run_id, "pareto.html"))
    text = html.read_text()
    assert '"type":"log"' in text and "Pareto front" in text
    png = Path(client.download_artifacts(parents[0].info.run_id, "pareto.png")).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_resumed_study_nests_new_trials_under_the_same_parent(tiny_bert, toy_data, tmp_path):
    fixed = _fixed(toy_data, tiny_bert)
    uri = f"sqlite:///{tmp_path / 'resume.db'}"
    _search(fixed, tmp_path, 2, tracking_uri=uri)
    study = _search(fixed, tmp_path, 1, tracking_uri=uri)
    parents, children = _runs(MlflowClient(uri), study)
    assert len(parents) == 1 and len(children) == len(study.trials) == 3
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}


def _refit_runs(client: MlflowClient, name: str):
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    return [r for r in runs if r.data.tags.get("lorasearch.role") == "refit"]


def test_each_refit_seed_is_a_child_run_beside_the_trials(tiny_bert, toy_data, tmp_path, capsys):
    """``lorasearch refit`` records every (configuration, rate, seed) under the study's parent:
    tags say which, params hold the rate it trained at, metrics its curve and the numbers the
    report averages. A study searched without MLflow gets its parent then (FINISHED: a record,
    not a running search); ``--no-tracking`` writes nothing."""
    fixed = _fixed(toy_data, tiny_bert)
    uri = f"sqlite:///{tmp_path / 'refit.db'}"
    study = _search(fixed, tmp_path, 3, tracking_uri=uri)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    refit = ["refit", "--storage", storage, "--seeds", "2", "--tracking-uri", uri, "--json"]
    assert main([*refit, "--study", "t", "--lr-scales", "0.5"]) == 0
    rows = json.loads(capsys.readouterr().out)["refits"]
    client = MlflowClient(uri)
    (parent,), _ = _runs(client, study)
    runs = _refit_runs(client, "t")
    assert len(runs) == 2 * len(rows) and len(rows) == 2 * len(study.best_trials)
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    for row in rows:
        mine = [
            r for r in runs
            if r.data.tags["trial"] == str(row["number"])
            and r.data.tags["lr_scale"] == f"{row['lr_scale']:g}"
        ]  # fmt: skip
        assert sorted(r.data.tags["seed"] for r in mine) == ["0", "1"]
        assert all(r.info.status == "FINISHED" and r.data.tags["state"] == "COMPLETE" for r in mine)
        tests = [r.data.metrics["test_accuracy"] for r in mine]
        assert statistics.mean(tests) == pytest.approx(row["test_mean"], abs=1e-12)
        devs = [r.data.metrics["final_dev_accuracy"] for r in mine]
        assert statistics.mean(devs) == pytest.approx(row["dev_mean"], abs=1e-12)
        assert all(float(r.data.params["lr"]) == pytest.approx(row["params"]["lr"]) for r in mine)
        curve = client.get_metric_history(mine[0].info.run_id, "dev_accuracy")
        assert [m.step for m in curve] == [10, 20]  # eval_every 10 of 20 steps

    # The study keeps the refit, each seed with its run: `best` chooses by it and exports (and
    # registers) the configuration as its best-dev seed trained, reproducing that seed's test.
    record = records.refit_record(load_study("t", storage))
    assert record.finished and (record.steps, record.seeds) == (None, 2)
    by_run = {r.info.run_id: r for r in runs}
    for config in record.configs:
        for seed in config.seeds:
            tags = by_run[seed.run_id].data.tags
            assert (tags["trial"], tags["seed"]) == (str(config.number), str(seed.seed))
            assert tags["lr_scale"] == f"{config.lr_scale:g}"
            assert by_run[seed.run_id].data.metrics["test_accuracy"] == seed.test_metric
    assert main(["pareto", "--study", "t", "--storage", storage, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["refit"]
    assert (summary["steps"], summary["seeds"], summary["finished"]) == (None, 2, True)
    assert [(c["number"], c["lr_scale"], c["picked"], c["seeds"]) for c in summary["configs"]] == [
        (r["number"], r["lr_scale"], r["picked"], r["seeds"]) for r in rows
    ]
    for config, row in zip(summary["configs"], rows, strict=True):
        assert config["dev_mean"] == pytest.approx(row["dev_mean"], abs=1e-12)
        assert config["test_std"] == pytest.approx(row["test_std"], abs=1e-12)
    assert main(["pareto", "--study", "t", "--storage", storage]) == 0
    out = capsys.readouterr().out
    assert "refit: 2 seed(s) at the search's budget; `best` ranks by it" in out
    target = tmp_path / "by-refit"
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    wrong = ["best", "--study", "t", "--storage", storage, "--tracking-uri", elsewhere]
    assert main([*wrong, "--by", "refit", "--export", str(target), "--register"]) == 2
    err = capsys.readouterr().err.strip().splitlines()  # said before anything is trained
    assert len(err) == 1 and "refit seed's MLflow run" in err[0] and "is not in the store" in err[0]
    assert not target.exists()
    best = ["best", "--study", "t", "--storage", storage, "--tracking-uri", uri, "--json"]
    assert main([*best, "--by", "refit", "--export", str(target), "--register"]) == 0
    out = json.loads(capsys.readouterr().out)
    picked = [r for r in rows if r["picked"]]
    top = max(picked, key=lambda r: (r["dev_mean"], -r["trainable_params"]))
    assert (out["by"], out["trial"], out["dev_metric"]) == ("refit", top["number"], top["dev_mean"])
    assert out["hyperparameters"] == top["params"] and out["refit"]["lr_scale"] == top["lr_scale"]
    assert out["refit"]["search_dev_metric"] == top["search_dev_metric"]
    seed_run = by_run[out["mlflow_run_id"]]
    assert seed_run.data.tags["seed"] == str(out["refit"]["export_seed"])
    assert out["export_source"].startswith("retrained as refit seed")
    assert out["test_metric_retrained"] == pytest.approx(
        out["refit"]["export_seed_test_metric"], abs=1e-9
    )
    version = client.get_model_version_by_alias(out["registered_model"], "best")
    assert version.run_id == out["mlflow_run_id"]
    assert main([*best, "--by", "search"]) == 0
    assert json.loads(capsys.readouterr().out)["by"] == "search"

    untracked = _search(fixed, tmp_path, 2, name="u", tracking=False)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    quiet = ["refit", "--storage", storage, "--study", "u", "--seeds", "1", "--tracking-uri", other]
    assert main([*quiet, "--no-tracking", "--json"]) == 0
    assert not (tmp_path / "other.db").exists()
    assert main([*quiet, "--json"]) == 0
    capsys.readouterr()
    parents, trials = _runs(MlflowClient(other), untracked)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and not trials
    assert records.parent_run_id(untracked) == parents[0].info.run_id
    runs = _refit_runs(MlflowClient(other), "u")
    assert len(runs) == len(untracked.best_trials)
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parents[0].info.run_id}


def test_two_workers_racing_to_open_the_study_converge_on_one_parent(tmp_path):
    """Both workers read the parent's params before either wrote them; the loser's insert hits
    the unique key. It must re-read and go on tracking, not give tracking up."""
    from mlflow.exceptions import MlflowException

    uri = f"sqlite:///{tmp_path / 'race.db'}"
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="race")
    params, warnings = {"steps": 20, "variants": "lora"}, []
    tracker, other = MlflowTracking(uri, warn=warnings.append), MlflowClient(uri)
    real, raced = tracker.client.log_batch, []

    def log_batch(run_id, metrics=(), params=(), tags=(), **kw):
        if params and not raced:  # the other worker's insert lands between our read and write
            raced.append(run_id)
            other.log_batch(run_id, params=list(params))
            raise MlflowException('duplicate key value violates unique constraint "param_pk"')
        return real(run_id, metrics=list(metrics), params=list(params), tags=list(tags), **kw)

    tracker.client.log_batch = log_batch
    tracker.start_study(study, params, {"purpose": "race"})
    assert raced == [tracker.parent_id] and not warnings and tracker.active
    run = other.get_run(records.parent_run_id(study))
    assert run.data.params == {"steps": "20", "variants": "lora"}
    assert run.data.tags["purpose"] == "race"


def test_mlflow_down_never_costs_a_trial(tiny_bert, toy_data, tmp_path, capsys):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    study = _search(
        _fixed(toy_data, tiny_bert), tmp_path, 2, tracking_uri=f"http://127.0.0.1:{port}"
    )
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    front = {t.number for t in study.best_trials}
    assert all(t.test_metric is not None for t in trial_records(study) if t.number in front)
    err = capsys.readouterr().err
    assert err.count("MLflow tracking at") == 1, err  # said once, not per trial


def test_malformed_tracking_uri_is_a_usage_error(tmp_path, capsys):
    code = main(["search", "--trials", "1", "--tracking-uri", "nonsense", "--data", str(tmp_path)])
    assert code == 2
    assert "malformed --tracking-uri" in capsys.readouterr().err


def test_tracking_is_a_protocol_checked_once_where_it_is_made(
    tiny_bert, toy_data, tmp_path, tracking_store
):
    assert isinstance(make_tracking("nonsense", enabled=False), NoTracking)
    assert isinstance(make_tracking(f"sqlite:///{tmp_path / 'm.db'}"), MlflowTracking)
    assert all(isinstance(t, Tracking) for t in (NoTracking(), MlflowTracking(None)))
    for bad in ("nonsense", "sqlite://relative.db"):
        with pytest.raises(LorasearchError, match="malformed --tracking-uri"):
            make_tracking(bad)
    # A search given no tracker keeps its record in the Optuna study alone.
    config = SearchConfig(
        trials=1, space=SearchSpace.default(["lora"]), storage=f"sqlite:///{tmp_path / 's.db'}"
    )
    study = run_search(_fixed(toy_data, tiny_bert), config)
    assert trial_records(study)[0].run_id is None and records.parent_run_id(study) is None
    assert not Path(tracking_store[len("sqlite:///") :]).exists()


# --- picking --------------------------------------------------------------------------------------


def _synthetic(points: list[tuple[float, int]]) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="syn")
    study.set_user_attr("metric_name", "accuracy")
    for metric, params in points:
        study.add_trial(
            create_trial(
                values=[metric, params],
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0, 1)},
            )
        )
    return study


def test_best_rule_takes_highest_metric_within_budget():
    study = _synthetic([(0.80, 1_000), (0.86, 10_000), (0.90, 1_000_000), (0.70, 50_000)])
    assert choose(study).trial.number == 2
    assert choose(study, max_params=100_000).trial.number == 1
    assert choose(study, max_params=1_000).trial.number == 0
    with pytest.raises(LorasearchError, match="below the smallest configuration"):
        choose(study, max_params=999)


def test_knee_rule_finds_where_more_params_stop_paying():
    # Metric climbs fast to 10k params, then barely moves: the knee is trial 1.
    study = _synthetic([(0.60, 1_000), (0.88, 10_000), (0.89, 100_000), (0.90, 1_000_000)])
    choice = choose(study, rule="knee")
    assert choice.trial.number == 1 and "knee" in choice.why
    # A straight-line front has no knee: the rule says so and falls back to the best metric.
    line = _synthetic([(0.6, 1_000), (0.7, 10_000), (0.8, 100_000)])
    choice = choose(line, rule="knee")
    assert choice.trial.number == 2 and "no knee" in choice.why


def _refit(study, configs: dict[int, list[tuple[float, list[float]]]], finished=True) -> None:
    """A refit record: per trial, per rate scale, the seeds' dev (test: dev - 0.01); the scale
    with the best mean dev is picked, as ``pick_scales`` marks it."""
    rows = []
    for number, scales in configs.items():
        means = {scale: statistics.mean(devs) if devs else -1.0 for scale, devs in scales}
        for scale, devs in scales:
            seeds = tuple(records.RefitSeed(i, d, d - 0.01) for i, d in enumerate(devs))
            picked = bool(devs) and means[scale] == max(means.values())
            rows.append(records.RefitConfig(number, "lora", {"lr": scale}, scale, picked, seeds))
    records.write_refit(study, records.RefitRecord(300, 2, finished, tuple(rows)))


def test_best_chooses_by_the_refit_when_it_covers_the_budget():
    """The search ranks trial 2 first; its refit ranks trial 0 (at its searched rate, not at
    twice it) first: ``by`` refit and auto follow the refit, ``by`` search the search; a front
    trial within the budget that the refit lacks sends auto back to the search and is named
    by ``by`` refit; a trial whose every refit seed failed is passed over."""
    study = _synthetic([(0.80, 1_000), (0.86, 10_000), (0.90, 1_000_000)])
    with pytest.raises(LorasearchError, match="study 'syn' has not been refit: run `lorasearch"):
        choose(study, by="refit")
    assert choose(study).by == "search"  # auto, no refit: the search
    _refit(study, {0: [(1.0, [0.91, 0.93]), (2.0, [0.50, 0.95])], 1: [(1.0, [0.88])],
                   2: [(1.0, [0.89, 0.87])]})  # fmt: skip
    for by in ("auto", "refit"):
        choice = choose(study, by=by)
        assert (choice.trial.number, choice.by, choice.refit.lr_scale) == (0, "refit", 1.0)
        assert choice.refit.dev_mean == pytest.approx(0.92)
        assert choice.refit.best_seed.seed == 1  # dev 0.93: the seed an export retrains
        assert "by mean dev over 2 refit seed(s) at 300 steps" in choice.why
    assert choose(study, by="search").trial.number == 2
    assert choose(study, max_params=10_000, by="refit").trial.number == 0
    _refit(study, {0: [(1.0, [0.85])], 2: [(1.0, [0.89])]})
    assert choose(study).trial.number == 2 and choose(study).by == "search"
    with pytest.raises(LorasearchError, match=r"front trial\(s\) 1 within the budget have no"):
        choose(study, by="refit")
    assert choose(study, max_params=1_000).by == "refit"  # trial 0 alone: covered
    _refit(study, {0: [(1.0, [0.85])], 1: [(1.0, [0.84])], 2: [(1.0, [])]})
    choice = choose(study, by="refit")
    assert choice.trial.number == 0 and "among the 2 front configuration(s)" in choice.why
    with pytest.raises(LorasearchError, match="unknown --by .dev."):
        choose(study, by="dev")


def test_knee_by_the_refit_uses_the_refit_means():
    # The search's curve has a knee at trial 1; the refit's bends the other way (every point
    # below the line joining its ends): no knee, and the rule falls back to the best refit mean.
    study = _synthetic([(0.60, 1_000), (0.88, 10_000), (0.89, 100_000), (0.90, 1_000_000)])
    assert choose(study, rule="knee", by="search").trial.number == 1
    _refit(study, {0: [(1.0, [0.6])], 1: [(1.0, [0.62])], 2: [(1.0, [0.66])], 3: [(1.0, [0.9])]})
    choice = choose(study, rule="knee")
    assert choice.trial.number == 3 and "no knee" in choice.why and choice.by == "refit"


def test_best_exports_the_searched_adapter_and_peft_reproduces_its_test_metric(
    searched, toy_data, tmp_path, capsys
):
    study, client, folder, uri = searched
    storage = f"sqlite:///{folder / 'study.db'}"
    target = tmp_path / "best"
    args = ["best", "--study", study.study_name, "--storage", storage, "--tracking-uri", uri]
    assert main([*args, "--export", str(target), "--register", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    chosen = study.trials[out["trial"]]
    assert out["variant"] == TrialRecord.of(chosen).variant
    assert out["dev_metric"] == max(t.values[0] for t in study.best_trials)
    assert out["export_source"].startswith("the search's trained adapter")
    assert {"README.md", "lorasearch.json", "adapter_config.json"} <= {
        p.name for p in target.iterdir()
    }
    card = (target / "README.md").read_text()
    assert f"trial {out['trial']}" in card and "PeftModel.from_pretrained" in card
    scored = subprocess.run(
        [sys.executable, str(HERE / "score_export.py"), str(target),
         str(toy_data / "test.tsv"), "sentence", "label"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert float(scored.stdout) == pytest.approx(out["test_metric"], abs=1e-9)

    version = client.get_model_version_by_alias(out["registered_model"], "best")
    assert version.run_id == TrialRecord.of(chosen).run_id
    assert str(version.version) == out["registered_version"]

    # A second export into the same folder needs --force; nothing there is touched without it.
    before = (target / "lorasearch.json").read_bytes()
    assert main([*args, "--export", str(target)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (target / "lorasearch.json").read_bytes() == before


def test_best_without_stored_adapter_retrains_the_same_result(
    tiny_bert, toy_data, tmp_path, capsys
):
    study = _search(_fixed(toy_data, tiny_bert), tmp_path, 2, tracking=False, variants=["lora"])
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    target = tmp_path / "retrained"
    code = main(
        [
            "best",
            "--study",
            study.study_name,
            "--storage",
            storage,
            "--export",
            str(target),
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["export_source"].startswith("retrained")
    assert out["test_metric_retrained"] == pytest.approx(out["test_metric"])


def test_best_on_a_study_with_no_finished_trial_is_a_usage_error(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path / 'empty.db'}"
    study = optuna.create_study(
        study_name="empty", storage=storage, directions=["maximize", "minimize"]
    )
    study.set_user_attr("fixed", "{}")
    assert main(["best", "--study", "empty", "--storage", storage]) == 2
    assert "no finished trial" in capsys.readouterr().err


# --- the UI ---------------------------------------------------------------------------------------


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_ui_lists_the_runs_in_a_real_browser(searched, tmp_path):
    study, client, folder, _ = searched
    experiment = client.get_experiment_by_name(study.study_name)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "lorasearch.cli", "ui", "--port", str(port)],
        cwd=folder, env=os.environ | {"MLFLOW_TRACKING_URI": ""},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the MLflow UI did not come up: " + server.stderr.read1().decode())
        runs_page = render(f"{base}/#/experiments/{experiment.experiment_id}/runs", tmp_path)
        children = [r.info.run_id for r in _runs(client, study)[1]]
        compare_page = render(
            f"{base}/#/compare-runs?runs={urllib.parse.quote(json.dumps(children))}"
            f"&experiments={urllib.parse.quote(json.dumps([experiment.experiment_id]))}",
            tmp_path,
        )
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    # The runs table: the study's parent run, and every run counted (children fold under it).
    assert study.study_name in runs_page
    assert f"{len(study.trials) + 1} matching runs" in page_text(runs_page)
    # The compare view of the trial runs: each by name, with its test metric.
    text = page_text(compare_page)
    for trial in study.trials:
        assert f"trial-{trial.number}" in text
    assert "test_accuracy" in text and "trainable_params" in text

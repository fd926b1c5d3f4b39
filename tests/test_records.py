"""The study's typed record: written and read back, versioned, and read from a study written
before it existed (tests/fixtures/legacy_study.db, lorasearch at 4981626); samplers by registry."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from conftest import toy_fixed
from optuna.trial import TrialState

from lorasearch.errors import LorasearchError
from lorasearch.search import recording, records
from lorasearch.search.config import Fixed, SearchConfig
from lorasearch.search.records import RECORD_VERSION, StudyRecord, trial_records
from lorasearch.search.report import study_report
from lorasearch.search.samplers import SAMPLERS
from lorasearch.search.storage import load_study
from lorasearch.search.study import run_search
from lorasearch.spaces import SearchSpace
from lorasearch.tracking import NoTracking
from lorasearch.training.trainer import TrainConfig
from lorasearch.training.trial import DataConfig, ModelConfig

FIXTURES = Path(__file__).parent / "fixtures"


def _fixed(toy_data, tiny_bert) -> Fixed:
    return toy_fixed(toy_data, tiny_bert, steps=10, eval_every=5)


@pytest.fixture
def legacy(tmp_path) -> optuna.Study:
    """The stored legacy study, copied first: the fixture itself is never written."""
    copy = tmp_path / "legacy_study.db"
    shutil.copy(FIXTURES / "legacy_study.db", copy)
    return load_study("legacy", f"sqlite:///{copy}")


# --- written and read back ------------------------------------------------------------------------


def test_study_and_trial_records_round_trip_without_training():
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="r")
    fixed = Fixed(DataConfig(task="sst2"), ModelConfig(targets=("query", "value")), TrainConfig())
    config = SearchConfig(trials=3, space=SearchSpace.default(["lora"]), sampler="random", seed=4)
    config.pin_rungs(fixed.train.steps)  # as a new study does
    assert config.min_steps == 11  # R = 300: R/27
    records.write_search(study, config.space, config.settings())
    records.write_new_study(study, fixed, "accuracy", 0.5, 1_000)
    record = StudyRecord.of(study)
    assert (record.name, record.metric_name, record.chance, record.full_params) == (
        "r", "accuracy", 0.5, 1_000,
    )  # fmt: skip
    assert record.fixed == fixed and record.version == RECORD_VERSION
    assert record.space.to_json() == config.space.to_json()
    assert record.settings == config.settings() and record.parent_run_id is None
    assert record.search_config(trials=2).settings() == config.settings()
    assert study.metric_names == ["accuracy", "trainable_params"]

    trial = study.ask()
    recording.record_start(trial, "host:1")
    recording.record_run(trial, "run-1")
    recording.record_config(trial, "lora", {"rank": 4, "lr": 1e-3})
    recording.record_plan(trial, 1_234, 0)
    recording.record_partial(trial, 5, 0.6)
    point = SimpleNamespace(step=5, dev_metric=0.6)
    result = SimpleNamespace(
        curve=[point, SimpleNamespace(step=10, dev_metric=0.7)], steps=10, preliminary_steps=2,
        dev_metric=0.7, test_metric=0.65, trainable_params=1_234, adapter_params=1_168,
        head_params=66, stored_params=1_500, steps_per_second=50.0, train_time_s=0.2,
        wall_time_s=0.3, eval_time_s=0.05, prepare_time_s=0.0, peak_memory_mb=100.0,
        device="cpu",
    )  # fmt: skip
    recording.record_result(trial, result)
    study.tell(trial, [0.7, 1_234.0])
    (read,) = trial_records(study)
    assert (read.number, read.state, read.variant, read.knobs) == (
        0, "COMPLETE", "lora", {"rank": 4, "lr": 1e-3},
    )  # fmt: skip
    assert read.values == (0.7, 1_234.0) and read.curve == {5: 0.6, 10: 0.7}
    assert (read.steps_used, read.planned_params, read.run_id, read.worker) == (
        12, 1_234, "run-1", "host:1",
    )  # fmt: skip
    for name in records.RESULT_FIELDS:
        assert getattr(read, name) == getattr(result, name), name
    assert read.reason is None and read.retry_of is None and read.finished
    assert records.front(study) == [read]

    pruned = study.ask()
    recording.record_reason(pruned, "over budget", pruned=True)
    study.tell(pruned, state=TrialState.PRUNED)
    failed = study.ask()
    study.tell(failed, state=TrialState.FAIL)  # no reason recorded: its worker died
    assert [t.reason for t in trial_records(study)][1:] == ["over budget", records.ABANDONED]
    assert trial_records(study, states=(TrialState.PRUNED,))[0].steps_used == 0


def test_a_study_lorasearch_did_not_write_or_a_newer_one_is_refused():
    plain = optuna.create_study(study_name="plain")
    with pytest.raises(LorasearchError, match="study 'plain' was not created by lorasearch"):
        StudyRecord.of(plain)
    assert records.front(plain) == []
    newer = optuna.create_study(directions=["maximize", "minimize"], study_name="newer")
    records.write_search(newer, SearchSpace.default(["lora"]), {})
    records.write_new_study(newer, Fixed(DataConfig(task="sst2"), ModelConfig()), "mcc", 0, 10)
    newer.set_user_attr(records.VERSION, RECORD_VERSION + 1)
    with pytest.raises(LorasearchError, match="newer lorasearch"):
        StudyRecord.of(newer)


def test_a_search_records_through_the_records(toy_data, tiny_bert, tmp_path):
    fixed = _fixed(toy_data, tiny_bert)
    config = SearchConfig(
        trials=2, space=SearchSpace.default(["lora"]), storage=f"sqlite:///{tmp_path / 's.db'}",
        study_name="s", early_stop=False, fidelity=False,
    )  # fmt: skip
    study = run_search(fixed, config, tracker=NoTracking())
    record = StudyRecord.of(study)
    assert record.version == RECORD_VERSION and record.fixed == fixed
    assert record.settings == config.settings() and record.metric_name == "accuracy"
    for trial, frozen in zip(trial_records(study), study.trials, strict=True):
        assert trial.state == "COMPLETE" and trial.values == tuple(frozen.values)
        assert trial.dev_metric == trial.values[0] and trial.trainable_params == trial.values[1]
        assert sorted(trial.curve) == [5, 10] and trial.steps_used == 10
        assert trial.run_id is None and trial.device == "cpu" and ":" in trial.worker


# --- a study written before the records -----------------------------------------------------------


def test_the_legacy_study_opens_as_version_0_and_reports_as_it_did(legacy):
    record = StudyRecord.of(legacy)
    assert record.version == 0 and record.metric_name == "accuracy"
    assert record.fixed.data.data == "toy" and record.fixed.model.model == "tiny-bert"
    assert record.settings["sampler"] == "tpe" and record.parent_run_id is None
    assert len(record.space.variants) == 8
    trials = trial_records(legacy)
    assert [t.state for t in trials].count("COMPLETE") == 7 and trials[6].state == "PRUNED"
    assert trials[6].reason.startswith("trails trial")
    assert all(t.variant and t.knobs and t.curve for t in trials)
    expected = json.loads((FIXTURES / "legacy_study.json").read_text())
    assert json.loads(json.dumps(study_report(legacy))) == expected
    assert records.VERSION not in legacy.user_attrs  # reading writes nothing


# --- samplers -------------------------------------------------------------------------------------


def test_a_sampler_is_one_registry_line(toy_data, tiny_bert, tmp_path):
    SAMPLERS["test-random"] = lambda config, seed: optuna.samplers.RandomSampler(seed=seed)
    try:
        config = SearchConfig(
            trials=1, space=SearchSpace.default(["lora"]), sampler="test-random",
            storage=f"sqlite:///{tmp_path / 'x.db'}", study_name="x", early_stop=False,
        )  # fmt: skip
        study = run_search(_fixed(toy_data, tiny_bert), config, tracker=NoTracking())
        assert isinstance(study.sampler, optuna.samplers.RandomSampler)
        assert [t.state for t in trial_records(study)] == ["COMPLETE"]
        assert StudyRecord.of(study).settings["sampler"] == "test-random"
    finally:
        del SAMPLERS["test-random"]
    with pytest.raises(LorasearchError, match="unknown sampler 'test-random'; use tpe, nsga2"):
        SearchConfig(trials=1, space=SearchSpace.default(["lora"]), sampler="test-random")

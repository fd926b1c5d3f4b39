"""Multi-fidelity search, live (tiny BERT, toy data): trials are compared at the rungs and stop
where they are not promotable; only full-budget trials make the front; test is scored only for
the front; a resumed study keeps its rungs; bad rung settings are one-line errors."""

import json
import shutil
from pathlib import Path

import optuna
import pytest
from conftest import toy_fixed
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from lorasearch.cli import main
from lorasearch.errors import LorasearchError
from lorasearch.search import records
from lorasearch.search.checkpoints import Resume, study_root, trial_checkpoint
from lorasearch.search.config import Fixed, SearchConfig
from lorasearch.search.early_stop import Finished, stop_reason
from lorasearch.search.fidelity import rung_steps
from lorasearch.search.records import StudyRecord, trial_records
from lorasearch.search.report import study_report
from lorasearch.search.study import run_search
from lorasearch.spaces import SearchSpace
from lorasearch.training.trial import load_data

R, MIN, ETA = 27, 3, 3  # rungs 3, 9, 27
RUNGS = rung_steps(R, MIN, ETA)


def _fixed(toy_data, tiny_bert, steps=R) -> Fixed:
    return toy_fixed(toy_data, tiny_bert, steps=steps)


def _search(fixed, tmp_path, trials, name="mf", enqueue=(), **config):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    if enqueue:
        study = optuna.create_study(
            study_name=name, storage=storage, directions=["maximize", "minimize"]
        )
        for params in enqueue:
            study.enqueue_trial(params)
    settings = dict(min_steps=MIN, eta=ETA, early_stop=False) | config
    space = SearchSpace.default(["lora"])
    return run_search(
        fixed,
        SearchConfig(trials=trials, space=space, storage=storage, study_name=name, **settings),
    )


@pytest.fixture(scope="module")
def searched(toy_data, tiny_bert, tmp_path_factory):
    """Six LoRA trials, the first a fast learner; the others slow (tiny lr) and at least as
    large, so they trail it at the first rung."""
    folder = tmp_path_factory.mktemp("mf")
    everywhere = {"lora.targets": "all", "lora.layers": "all"}  # sizes follow the rank alone
    everywhere |= {"lora.alpha_ratio": 2.0, "lora.rslora": False, "lora.init": "kaiming"}  # α = 2r
    fast = {"lora.rank": 2, "lora.lr": 5e-3} | everywhere
    slow = [{"lora.rank": rank, "lora.lr": 1e-6} | everywhere for rank in (4, 8, 4, 16, 8)]
    study = _search(_fixed(toy_data, tiny_bert), folder, 6, enqueue=[fast, *slow])
    return study, folder


def test_rungs_are_evaluated_and_the_unpromoted_pause_there(searched):
    study, _ = searched
    assert RUNGS == (3, 9, 27)
    trials = trial_records(study)
    assert {t.state for t in trials} <= {"COMPLETE", "PRUNED"}
    paused = [t for t in trials if t.state == "PRUNED"]
    assert paused, [t.reason for t in trials]
    for trial in paused:
        step = RUNGS[trial.rung - 1]
        assert trial.rung < len(RUNGS) and trial.paused_at == step
        assert trial.steps_used == step - trial.resumed_from  # its own steps only
        assert max(trial.curve) == step and max(trial.dev_loss_curve) == step
        assert f"paused at rung {trial.rung} (step {step} of {R}): rank " in trial.reason
        assert sorted(trial.rungs) == list(RUNGS[: trial.rung])  # its point at each rung
    for trial in trials:
        # each rung reached was evaluated, and nothing else (no --eval-every: only the rungs)
        assert sorted(trial.curve) == list(RUNGS[: trial.rung])
        assert trial.curve.keys() == trial.dev_loss_curve.keys()
        assert all(params == trial.planned_params for _, params in trial.rungs.values())
        # the signal recorded at a rung is the negated dev cross-entropy there (the default)
        for step, (signal, _) in trial.rungs.items():
            assert signal == pytest.approx(-trial.dev_loss_curve[step])


def _chain(by_number, trial):
    """The trials that trained one configuration, first to last (continuations follow links)."""
    chain = [trial]
    while chain[0].continues is not None:
        chain.insert(0, by_number[chain[0].continues])
    return chain


def test_promotions_continue_paused_trials_from_their_rung(searched):
    study, folder = searched
    trials = trial_records(study)
    by_number = {t.number: t for t in trials}
    continuations = [t for t in trials if t.continues is not None]
    assert continuations
    assert sum(t.continues is None for t in trials) == 6  # --trials counts configurations
    for trial in continuations:
        before = by_number[trial.continues]
        assert before.state == "PRUNED" and before.paused_at is not None
        assert trial.number > before.number and trial.knobs == before.knobs
        assert trial.resumed_from == before.paused_at  # from its checkpoint, not from step 0
        assert (
            f"continues trial {before.number}; resumed at step {before.paused_at}" in trial.reason
            or trial.state == "COMPLETE"
        )
        assert {s: v for s, v in trial.rungs.items() if s <= before.paused_at} == before.rungs
        assert [c.continues for c in continuations].count(before.number) == 1  # once each
    kept = {int(p.name) for p in study_root(f"sqlite:///{folder / 'study.db'}", "mf").glob("*")}
    continued = {t.continues for t in continuations}
    assert kept == {t.number for t in trials if t.paused_at is not None} - continued


def test_promoted_trials_reach_the_full_budget_and_only_they_make_the_front(searched):
    study, _ = searched
    trials = trial_records(study)
    by_number = {t.number: t for t in trials}
    complete = [t for t in trials if t.state == "COMPLETE"]
    assert complete
    for trial in complete:
        chain = _chain(by_number, trial)
        assert trial.rung == len(RUNGS) and max(trial.curve) == R
        assert sum(t.steps_used for t in chain) == R  # each step paid once along the chain
    front = {t.number for t in records.front(study)}
    assert front and front <= {t.number for t in complete}


def test_test_is_scored_exactly_for_the_front(searched):
    study, _ = searched
    report = study_report(study)
    for row in report["trials"]:
        assert (row["test_metric"] is not None) == row["pareto"], row
        assert row["rung"] == next(
            t.rung for t in trial_records(study) if t.number == row["number"]
        )
    by_number = {t.number: t for t in trial_records(study)}
    for number in report["pareto"]:
        assert by_number[number].test_metric is not None
    for trial in by_number.values():  # a stopped trial never paid for the test split
        if trial.state == "PRUNED":
            assert trial.test_metric is None


def test_an_eval_every_adds_its_evaluations_to_the_rungs(toy_data, tiny_bert, tmp_path):
    fixed = _fixed(toy_data, tiny_bert)
    fixed.train.eval_every = 6
    study = _search(fixed, tmp_path, 2, enqueue=[{"lora.rank": 2, "lora.lr": 5e-3}] * 2)
    for trial in trial_records(study):
        reached = RUNGS[trial.rung - 1]
        expected = {*RUNGS[: trial.rung], *range(6, reached + 1, 6)}
        assert sorted(trial.curve) == sorted(expected)


def test_no_fidelity_trains_every_trial_to_the_full_budget(toy_data, tiny_bert, tmp_path):
    study = _search(_fixed(toy_data, tiny_bert), tmp_path, 3, fidelity=False)
    trials = trial_records(study)
    assert [t.state for t in trials] == ["COMPLETE"] * 3
    assert all(t.steps_used == R and t.rung is None and not t.rungs for t in trials)
    assert all(not {3, 9} & set(t.curve) for t in trials)  # no rung evaluations
    assert all("rung" not in row for row in study_report(study)["trials"])
    assert StudyRecord.of(study).settings["fidelity"] is False


def test_a_resumed_study_keeps_its_rungs(toy_data, tiny_bert, tmp_path):
    fixed = _fixed(toy_data, tiny_bert)
    _search(fixed, tmp_path, 1)
    # Resumed with other rung settings: the study's own stay in force, for a worker too.
    study = _search(fixed, tmp_path, 1, min_steps=None, eta=2, signal="dev_metric")
    record = StudyRecord.of(study)
    assert (record.settings["min_steps"], record.settings["eta"]) == (MIN, ETA)
    assert record.settings["signal"] == "dev_loss" and record.settings["fidelity"] is True
    joined = record.search_config(trials=1)
    assert (joined.fidelity, joined.min_steps, joined.eta) == (True, MIN, ETA)
    second = trial_records(study)[1]
    assert set(RUNGS[: second.rung]) <= set(second.curve)
    assert not {13, 6} & set(second.curve)  # eta 2's rungs were never used
    with pytest.raises(LorasearchError, match="rungs up to --max-steps 27"):
        _search(_fixed(toy_data, tiny_bert, steps=30), tmp_path, 1)
    # A study whose settings predate the rungs goes on without them.
    settings = {k: v for k, v in record.settings.items() if k not in ("fidelity", "eta")}
    study.set_user_attr(records.SEARCH, json.dumps(settings))
    assert StudyRecord.of(study).search_config(trials=1).fidelity is False


def test_a_new_study_records_its_lowest_rung(toy_data, tiny_bert, tmp_path):
    fixed = _fixed(toy_data, tiny_bert)
    study = _search(fixed, tmp_path, 1, min_steps=None)
    record = StudyRecord.of(study)
    assert record.settings["min_steps"] == 9  # R/27 = 1, raised to MIN_RUNG_STEPS: rung 9
    assert record.search_config(trials=1).rungs(fixed.train.steps) == (9, 27)
    # A study that stored none (written before the rungs were recorded) has R/27's too.
    study.set_user_attr(records.SEARCH, json.dumps(record.settings | {"min_steps": None}))
    assert StudyRecord.of(study).search_config(trials=1).rungs(fixed.train.steps) == (9, 27)


def test_cli_flags_and_the_pareto_json(capsys, toy_data, tiny_bert, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--data", str(toy_data), "--text-column", "sentence", "--model", str(tiny_bert),
            "--batch-size", "16", "--max-length", "24", "--no-tracking", "--trials", "2",
            "--seed", "1"]  # seeded: an unseeded draw may be PiSSA at a rank the tiny model lacks  # fmt: skip
    assert main(["search", *args, "--max-steps", "9", "--min-steps", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all(row["rung"] >= 1 for row in out["trials"])
    full = [row for row in out["trials"] if row["state"] == "COMPLETE"]
    assert full and all(row["rung"] == 2 for row in full)
    by_number = {row["number"]: row for row in out["trials"]}
    for row in full:  # a promotion's own steps plus its paused predecessor's: the full budget
        before = by_number.get(row["continues"], {"steps_used": 0})
        assert row["steps_used"] + before["steps_used"] == 9
    assert sum(row["continues"] is None for row in out["trials"]) == 2  # --trials: configurations
    assert {"paused_at", "continues"} <= set(out["trials"][0])
    assert main(["pareto", "--study", out["study"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["trials"] == out["trials"]
    assert main(["search", *args, "--steps", "6", "--no-fidelity", "--study", "nf", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [row["steps_used"] for row in out["trials"]] == [6, 6]
    assert all("rung" not in row for row in out["trials"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--eta", "1"], "--eta must be >= 2"),
        (["--min-steps", "0"], "--min-steps must be >= 1"),
        (["--steps", "30", "--min-steps", "60"], "--min-steps (60) must be <= --max-steps (30)"),
        (["--steps", "20", "--max-steps", "30"], "--steps 20 and --max-steps 30 disagree"),
        (["--fidelity-signal", "loss"], "Invalid value for '--fidelity-signal'"),
    ],
)
def test_bad_rung_settings_are_one_line(capsys, toy_data, tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    code = main(["search", "--data", str(toy_data), "--text-column", "sentence", "--trials", "1",
                 *extra])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "lorasearch.db").exists()  # nothing written


# --- rung checkpoints (search/checkpoints.py) ------------------------------------------------------


def test_checkpoint_folders_sit_beside_sqlite_or_under_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LORASEARCH_CACHE", str(tmp_path / "cache"))
    assert study_root("sqlite:///runs/s.db", "my/study") == Path("runs/s.db.checkpoints/my_study")
    server = study_root("postgresql://u:secret@db/optuna", "s")
    assert server.parent == tmp_path / "cache" / "checkpoints" and len(server.name) == 12
    assert server == study_root("postgresql://u:other@db/optuna", "s")  # keyed on the masked URL
    assert server != study_root("postgresql://u:secret@db/optuna", "t")


def test_a_retry_takes_over_its_failed_trials_checkpoint_and_rungs(tmp_path):
    storage = f"sqlite:///{tmp_path / 'c.db'}"
    study = optuna.create_study(study_name="c", storage=storage, directions=["maximize"] * 2)
    root = study_root(storage, "c")
    killed = study.ask()
    with trial_checkpoint(study, killed, storage, True) as resume:
        assert resume == Resume(root / "0") and resume.folder.is_dir()
        (resume.folder / "checkpoint.pt").write_text("rung 2")
        killed.set_user_attr(records.RUNG, 2)
        killed.set_user_attr(records.RUNGS, {"3": [-0.6, 100], "9": [-0.5, 100]})
        # a kill: the with block never ends; the heartbeat fails the trial and queues its retry
        study.tell(killed, state=TrialState.FAIL)
        RetryHeartbeatStaleTrialCallback(max_retry=1)(study, study.trials[0])
        retry = study.ask()
        with trial_checkpoint(study, retry, storage, True) as taken:
            assert taken.retry_of == 0 and taken.adopted and taken.rung == 2
            assert taken.points == {3: (-0.6, 100), 9: (-0.5, 100)}
            assert (root / "1" / "checkpoint.pt").read_text() == "rung 2"
            assert not (root / "0").exists()  # moved, not copied
        assert not (root / "1").exists()  # deleted as the retry ended
    # Without a folder to take over (another machine's), the retry starts from step 0.
    study.tell(retry, state=TrialState.FAIL)
    RetryHeartbeatStaleTrialCallback()(study, study.trials[1])
    with trial_checkpoint(study, study.ask(), storage, True) as fresh:
        assert fresh.retry_of == 1 and not fresh.adopted and fresh.points == {}


def test_a_trial_start_sweeps_the_folders_no_trial_will_resume(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=storage, directions=["maximize"] * 2)
    root = study_root(storage, "s")
    for _ in range(3):  # 0 COMPLETE, 1 FAIL (retried: 3 waits), 2 FAIL (a retry killed in turn)
        trial = study.ask()
        (root / str(trial.number)).mkdir(parents=True)
        (root / str(trial.number) / "checkpoint.pt").write_text("x")
    study.tell(0, [0.5, 10.0])
    study.tell(1, state=TrialState.FAIL)
    study.tell(2, state=TrialState.FAIL)
    RetryHeartbeatStaleTrialCallback(max_retry=1)(study, study.trials[1])
    (root / "tmp-file").write_text("not a trial's")
    with trial_checkpoint(study, study.ask(), storage, True) as resume:  # trial 3, the retry
        assert resume.adopted and resume.retry_of == 1
        assert sorted(p.name for p in root.iterdir()) == ["3", "tmp-file"]
    with trial_checkpoint(study, study.ask(), storage, False) as off:  # no rungs: no folder
        assert off == Resume(None)


def test_a_folder_that_cannot_be_made_costs_the_resume_not_the_trial(tmp_path):
    storage = f"sqlite:///{tmp_path / 'u.db'}"
    study = optuna.create_study(study_name="u", storage=storage, directions=["maximize"] * 2)
    (tmp_path / "u.db.checkpoints").write_text("a file where the folder would go")
    said = []
    with trial_checkpoint(study, study.ask(), storage, True, said.append) as resume:
        assert resume == Resume(None)
    assert len(said) == 1 and said[0].startswith("trial 0 keeps no rung checkpoint: ")


def test_the_end_of_a_search_continues_a_large_paused_trial_the_small_ones_outrank():
    """promotion.finish on a study: besides each rung's top, the best paused trial of another
    decade of params is continued (enqueued with its parameters and rung record)."""
    from lorasearch.search import promotion

    study = optuna.create_study(directions=["maximize", "minimize"])
    # five small trials (1-3k params) that all outrank the one large trial (200k) at rung 9
    points = [(0.9, 1000), (0.85, 1200), (0.8, 1500), (0.7, 2000), (0.6, 3000), (0.7, 200_000)]
    for signal, params in points:
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        trial.set_user_attr(records.RUNGS, {"9": [signal, params]})
        trial.set_user_attr(records.PAUSED, 9)
        study.tell(trial, state=TrialState.PRUNED)
    promoted = promotion.finish(study, (9, 27), 3)
    # the top 3 (ceil(6 / 3), at least eta), and the best of the large trial's decade
    assert sorted(promoted) == [0, 1, 2, 5]
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(t.user_attrs[records.CONTINUES] for t in waiting) == [0, 1, 2, 5]
    assert promotion.finish(study, (9, 27), 3) == []  # each is continued once


def test_with_rungs_early_stopping_leaves_the_rungs_to_the_promotions(
    toy_data, tiny_bert, tmp_path
):
    """Rungs 40 and 120. A fast learner reaches R (COMPLETE); slow ones, no smaller, trail it at
    rung 40 by more than the margin and the dev set's noise, and pause there. A promotion then
    continues one on a machine without its checkpoint, so it trains again from step 0: early
    stopping, which alone would stop it at step 40, judges neither that passed rung nor R (the
    rungs are the promotions' to decide), and the continuation reaches R."""
    from lorasearch.search import promotion

    everywhere = {"lora.targets": "all", "lora.layers": "all"}
    everywhere |= {"lora.alpha_ratio": 2.0, "lora.rslora": False, "lora.init": "kaiming"}
    fast = [{"lora.rank": 16, "lora.lr": lr} | everywhere for lr in (5e-3, 4e-3, 6e-3)]
    slow = [{"lora.rank": rank, "lora.lr": 1e-4} | everywhere for rank in (16, 32, 16)]
    fixed = _fixed(toy_data, tiny_bert, steps=120)
    settings = dict(early_stop=True, margin=0.05, min_steps=40)
    study = _search(fixed, tmp_path, 6, enqueue=[*fast, *slow], **settings)
    trials = trial_records(study)
    leader = next(t for t in trials if t.state == "COMPLETE" and t.continues is None)
    done = [Finished(leader.number, int(leader.values[1]), leader.curve, leader.values[0])]
    dev_size = len(load_data(fixed.data).dev)
    continued = {t.continues for t in trials}
    paused = [t for t in trials if t.paused_at == 40 and t.number not in continued]
    slow_one = next(t for t in paused if t.knobs["lr"] == 1e-4)
    assert stop_reason(40, slow_one.curve[40], slow_one.planned_params, done, 0.05, dev_size)
    for folder in study_root(f"sqlite:///{tmp_path / 'study.db'}", "mf").iterdir():
        shutil.rmtree(folder)  # the continuation runs where the checkpoint is not
    promotion._enqueue(study, study.trials[slow_one.number])
    trials = trial_records(_search(fixed, tmp_path, 6, **settings))
    (continuation,) = [t for t in trials if t.continues == slow_one.number]
    assert continuation.resumed_from == 0 and continuation.steps_used == 120
    assert continuation.state == "COMPLETE", continuation.reason

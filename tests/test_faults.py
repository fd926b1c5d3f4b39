"""Many workers on one study, and faults: kill -9, Ctrl-C, NaN loss, bad input. Nothing is lost."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import torch
from conftest import toy_fixed, toy_rows, write_tsv
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from lorasearch.cli import main
from lorasearch.search import objective as objective_module
from lorasearch.search.checkpoints import study_root
from lorasearch.search.config import SearchConfig
from lorasearch.search.design import DESIGN_ATTR
from lorasearch.search.fidelity import rung_steps
from lorasearch.search.records import StudyRecord, TrialRecord, trial_records
from lorasearch.search.study import run_search
from lorasearch.spaces import SearchSpace
from lorasearch.training import trainer as trainer_module

ENDED = (TrialState.COMPLETE, TrialState.PRUNED)
# The default space may draw PiSSA/OLoRA at a rank above the tiny models' hidden size (32): such a
# trial fails before training, with this reason, and the search goes on (which worker draws it
# depends on timing, so the many-worker tests allow it).
BAD_DRAW = "needs rank <= min(in, out)"


def _args(toy_data, tiny_bert, steps: int) -> list[str]:
    return ["--data", str(toy_data), "--text-column", "sentence", "--model", str(tiny_bert),
            "--variants", "lora", "--steps", str(steps), "--batch-size", "16",
            "--max-length", "24", "--eval-every", str(max(1, steps // 3))]  # fmt: skip


def _cli(*args: str, cwd, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lorasearch.cli", *args],
        cwd=cwd, env=(env or os.environ) | {"LORASEARCH_QUIET": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # SIGINT as a terminal delivers it, even when pytest itself runs as a shell's background
        # job (which starts with SIGINT ignored, and a child would inherit that)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip


def _wait_for(condition, timeout: float = 120.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _kill_mid_run(process, storage: str, name: str, root: Path, worker: str | None = None):
    """SIGKILL ``process`` (right away: a paused trial ends within seconds) once one of its
    trials is RUNNING past a rung, i.e. with a rung checkpoint in its folder; returns that
    trial's number and the step its checkpoint holds."""
    found, seen = [], set()

    def running_with_checkpoint() -> bool:
        if not root.is_dir() or not _states(storage, name):
            return False
        for trial in optuna.load_study(study_name=name, storage=storage).trials:
            saved = root / str(trial.number) / "checkpoint.pt"
            mine = worker is None or trial.user_attrs.get("worker") == worker
            if trial.state == TrialState.RUNNING and mine and saved.is_file():
                if trial.number not in seen:  # a trial pausing there ends within milliseconds:
                    seen.add(trial.number)  # still running at the next look, it went on
                    continue
                process.send_signal(signal.SIGKILL)
                found.append((trial.number, saved))
                return True
        return False

    deadline = time.monotonic() + 300
    while not running_with_checkpoint():  # looks 0.1 s apart: a trial going on trains longer
        if time.monotonic() > deadline or process.poll() is not None:
            pytest.fail("no trial was seen running past a rung")
        time.sleep(0.1)
    process.wait(timeout=30)
    number, saved = found[0]
    return number, torch.load(saved, weights_only=True)["loop"]["step"]


def _states(storage: str, name: str) -> list[TrialState]:
    try:
        return [t.state for t in optuna.load_study(study_name=name, storage=storage).trials]
    except KeyError:  # not created yet
        return []


def _runs(uri: str, name: str):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    return client.search_runs([experiment.experiment_id])


# --- many workers ---------------------------------------------------------------------------------


@pytest.fixture
def postgres():
    """Fresh databases on the PostgreSQL server .ci/run starts (LORASEARCH_TEST_POSTGRES):
    call it for each one needed (Optuna and MLflow each keep their own schema)."""
    admin = os.environ.get("LORASEARCH_TEST_POSTGRES")
    if not admin:
        pytest.skip("no PostgreSQL server: run `make services` (CI does) to start one")
    import sqlalchemy

    engine = sqlalchemy.create_engine(admin, isolation_level="AUTOCOMMIT")
    made = []

    def database() -> str:
        name = f"lorasearch_{uuid.uuid4().hex[:12]}"
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
        made.append(name)
        return admin.rsplit("/", 1)[0] + "/" + name

    yield database
    with engine.connect() as connection:
        for name in made:
            connection.execute(sqlalchemy.text(f"DROP DATABASE {name} WITH (FORCE)"))
    engine.dispose()


def test_two_workers_finish_one_postgres_study_with_the_exact_trial_count(
    postgres, toy_data, tiny_bert, tmp_path
):
    postgres_url, tracking = postgres(), postgres()  # the study; MLflow's store beside it
    MlflowClient(tracking).search_experiments()  # the tracking schema exists before workers race
    command = ["search", *_args(toy_data, tiny_bert, 30), "--storage", postgres_url,
               "--study", "shared", "--total-trials", "6", "--tracking-uri", tracking,
               "--no-early-stop"]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    workers = [_cli(*command, cwd=tmp_path, env=env) for _ in range(2)]
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
        assert "MLflow tracking at" not in err, err  # tracking never switched off
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    # Six configurations ended, and the promotions they caused (continuations of paused trials,
    # not counted); with the rungs shared across both workers some pause at a rung.
    states = [t.state for t in study.trials]
    trials = trial_records(study)
    assert all(t.state != "FAIL" or BAD_DRAW in t.reason for t in trials)
    assert TrialState.COMPLETE in states
    assert sum(t.continues is None and t.state != "FAIL" for t in trials) == 6
    assert len({t.worker for t in trials}) == 2  # both did work
    runs = _runs(tracking, "shared")
    parents = [r for r in runs if r.data.tags.get("lorasearch.role") == "study"]
    children = [r for r in runs if r.data.tags.get("lorasearch.role") == "trial"]
    trained = [t for t in trials if "already continues" not in (t.reason or "")]  # (a race's
    assert len(parents) == 1 and len(children) == len(trained)  # duplicate promotion: no run)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {r.info.run_id for r in children} == {t.run_id for t in trained}


def test_two_postgres_workers_promote_at_rungs_and_resume_a_killed_workers_trial(
    postgres, toy_data, tiny_bert, tmp_path
):
    """Two workers share one study's rungs; one is killed after its trial passed a rung and the
    other, on the same machine (the same cache), retries that trial from its checkpoint. Every
    trial's rung and steps agree, and the count is exact."""
    url, total, steps = postgres(), 8, 400
    command = ["search", *_args(toy_data, tiny_bert, steps), "--storage", url, "--study", "p",
               "--total-trials", str(total), "--heartbeat", "1", "--no-tracking",
               "--no-early-stop", "--seed", "3", "--min-steps", "44"]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    doomed, survivor = (_cli(*command, cwd=tmp_path, env=env) for _ in range(2))
    root, worker = study_root(url, "p"), f"{socket.gethostname()}:{doomed.pid}"
    number, resumed_at = _kill_mid_run(doomed, url, "p", root, worker)
    out, err = survivor.communicate(timeout=900)
    assert survivor.returncode == 0, err
    study = optuna.load_study(study_name="p", storage=url)
    trials = trial_records(study)
    configurations = [t for t in trials if t.continues is None]
    assert sum(t.state in ("COMPLETE", "PRUNED") for t in configurations) == total
    failed = [t.number for t in trials if t.state == "FAIL" and BAD_DRAW not in t.reason]
    assert failed == [number]  # only the killed one
    (retry,) = [t for t in trials if t.retry_of == number]
    assert retry.resumed_from == resumed_at and retry.worker != worker
    rungs = rung_steps(steps, 44)  # 44, 133, 400: wide enough to kill a trial mid-run
    assert {t.state for t in trials} >= {"COMPLETE", "PRUNED"}  # promotions and pauses happened
    duplicates = [t for t in trials if "already continues" in (t.reason or "")]
    assert all(t.steps_used == 0 and not t.curve for t in duplicates)  # never trained
    for trial in (t for t in trials if t.state != "FAIL" and t not in duplicates):
        reached = rungs[trial.rung - 1]
        own = trial.continues is not None  # a promotion counts its own steps; a retry of a
        assert trial.steps_used == reached - (trial.resumed_from if own else 0), trial  # trial all
        assert max(trial.curve) == reached, trial
        assert sorted(trial.rungs) == [r for r in rungs[: trial.rung] if r < steps], trial
        if trial.state == "PRUNED":
            assert trial.rung < len(rungs) and trial.paused_at == reached, trial
            assert f"paused at rung {trial.rung}" in trial.reason
        else:
            assert trial.rung == len(rungs)
    for trial in trials:  # each promotion continues a paused trial, once
        if trial.continues is not None and trial not in duplicates and trial.retry_of is None:
            assert by_number(trials, trial.continues).paused_at == trial.resumed_from or (
                trial.resumed_from == 0  # its checkpoint was not on this machine
            )
    continued = {t.continues for t in trials if t.continues is not None}
    paused = {t.number for t in trials if t.paused_at is not None} - continued
    assert not root.is_dir() or {int(p.name) for p in root.iterdir()} <= paused


def by_number(trials, number):
    return next(t for t in trials if t.number == number)


def _two_lora_trials(toy_data, tiny_bert, tmp_path) -> optuna.Study:
    """An in-process search of two short LoRA trials (for faults injected by monkeypatch)."""
    fixed = toy_fixed(toy_data, tiny_bert, steps=10)
    config = SearchConfig(
        trials=2, space=SearchSpace.default(["lora"]), storage=f"sqlite:///{tmp_path / 'f.db'}",
        study_name="f", early_stop=False,
    )  # fmt: skip
    return run_search(fixed, config)


# --- faults ---------------------------------------------------------------------------------------


def test_kill_9_mid_trial_then_the_same_command_completes_the_study(toy_data, tiny_bert, tmp_path):
    storage = f"sqlite:///{tmp_path / 'k.db'}"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = ["search", *_args(toy_data, tiny_bert, 400), "--storage", storage, "--study", "k",
               "--total-trials", "3", "--heartbeat", "1", "--tracking-uri", uri,
               "--no-early-stop", "--no-fidelity"]  # fmt: skip
    first = _cli(*command, cwd=tmp_path)
    _wait_for(
        lambda: _states(storage, "k")[:2] == [TrialState.COMPLETE, TrialState.RUNNING],
        what="trial 0 to finish and trial 1 to start",
    )
    time.sleep(1.0)  # mid-trial
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    again = _cli(*command, cwd=tmp_path)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    study = optuna.load_study(study_name="k", storage=storage)
    states = [t.state for t in study.trials]
    assert sum(s in ENDED for s in states) == 3  # the requested number, completed
    killed = study.trials[1]
    assert killed.state == TrialState.FAIL
    retries = [t for t in study.trials if TrialRecord.of(t).retry_of == 1]
    assert len(retries) == 1 and retries[0].params == killed.params  # retried once
    assert TrialRecord.of(retries[0]).reason.startswith("retry of trial 1")
    runs = {r.info.run_id: r for r in _runs(uri, "k")}
    assert runs[TrialRecord.of(killed).run_id].info.status == "FAILED"
    assert not [r for r in runs.values() if r.info.status == "RUNNING"]
    assert all(runs[t.run_id].info.status == "FINISHED" for t in trial_records(study)
               if t.state == "COMPLETE")  # fmt: skip


def test_kill_9_after_a_rung_then_the_retry_resumes_from_that_rung(toy_data, tiny_bert, tmp_path):
    """Every trial is the same configuration (the space fixes LoRA's knobs), so every run of it,
    paused, promoted, killed or resumed, must follow one and the same curve. Rungs 133 and 400:
    a trial that goes past 133 (in place or as a promotion) trains 267 steps more, and is killed
    there; its retry resumes from the checkpoint it left, exactly."""
    storage = f"sqlite:///{tmp_path / 'r.db'}"
    space = tmp_path / "fixed.toml"
    space.write_text(
        "[lora]\nrank = 4\nlr = 0.002\nalpha_ratio = 2.0\nrslora = false\ninit = 'kaiming'\n"
        "targets = 'all'\nlayers = 'all'\n"
    )
    command = ["search", *_args(toy_data, tiny_bert, 400), "--storage", storage, "--study", "r",
               "--total-trials", "3", "--heartbeat", "1", "--no-tracking", "--no-early-stop",
               "--space", str(space), "--min-steps", "100"]  # fmt: skip
    rungs = rung_steps(400, 100)
    assert rungs == (133, 400)
    root = tmp_path / "r.db.checkpoints" / "r"
    first = _cli(*command, cwd=tmp_path)
    killed, resumed_at = _kill_mid_run(first, storage, "r", root)
    assert resumed_at == rungs[0]
    before = {t.number: t for t in optuna.load_study(study_name="r", storage=storage).trials}
    again = _cli(*command, cwd=tmp_path)
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    study = optuna.load_study(study_name="r", storage=storage)
    trials = trial_records(study)
    assert sum(t.continues is None and t.state != "FAIL" for t in trials) == 3
    assert [t.number for t in trials if t.state == "FAIL"] == [killed]
    for number, trial in before.items():  # a finished trial is untouched
        if trial.state in ENDED:
            after = study.trials[number]
            assert (after.state, after.values, after.user_attrs) == (
                trial.state, trial.values, trial.user_attrs
            )  # fmt: skip
    (retry,) = [t for t in trials if t.retry_of == killed]
    assert retry.resumed_from == resumed_at
    assert retry.reason.startswith(f"retry of trial {killed}; ")
    assert f"resumed at step {resumed_at}" in retry.reason
    # A retry of a promotion counts its own steps (the paused trial recorded the ones before);
    # a retry of a trial that went on in place counts them all (the killed one recorded none).
    own = retry.continues is not None
    assert retry.state == "COMPLETE" and retry.steps_used == 400 - (resumed_at if own else 0)
    assert sorted(retry.rungs) == list(rungs[:-1])  # the rung it passed before
    # Resumed exactly: one configuration, one curve, however its runs were cut and resumed.
    reference = max(trials, key=lambda t: len(t.curve)).curve
    for trial in trials:
        for step, metric in trial.curve.items():
            assert metric == pytest.approx(reference[step], abs=1e-6), (trial.number, step)
    complete = [t for t in trials if t.state == "COMPLETE"]
    for trial in complete:
        assert trial.values == pytest.approx(complete[0].values, abs=1e-6)
    kept = {int(p.name) for p in root.iterdir()}
    continued = {t.continues for t in trials if t.continues is not None}
    assert kept <= {t.number for t in trials if t.paused_at is not None} - continued


def test_ctrl_c_ends_the_trial_keeps_the_study_consistent_and_exits_130(
    toy_data, tiny_bert, tmp_path
):
    storage = f"sqlite:///{tmp_path / 'c.db'}"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    process = _cli(
        "search", *_args(toy_data, tiny_bert, 2000), "--storage", storage, "--study", "c",
        "--trials", "3", "--tracking-uri", uri, "--no-fidelity", cwd=tmp_path,
    )  # fmt: skip
    _wait_for(lambda: TrialState.RUNNING in _states(storage, "c"), what="a running trial")
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=300)  # (a loaded machine took over 120 s to wind down)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1] == "lorasearch: interrupted"
    assert "Traceback" not in err
    study = optuna.load_study(study_name="c", storage=storage)
    started = [t for t in study.trials if t.state != TrialState.WAITING]
    *earlier, last = started  # (trials with long runs: the interrupt lands in training)
    assert last.state == TrialState.FAIL
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert all(DESIGN_ATTR in t.user_attrs for t in waiting)  # the design's rest: run on resume
    # before it, only trials that failed on a bad draw (a rank PiSSA cannot take on the tiny model)
    assert all("needs rank <=" in TrialRecord.of(t).reason for t in earlier)
    assert TrialRecord.of(last).reason == "interrupted (Ctrl-C)"
    runs = _runs(uri, "c")
    children = [r for r in runs if r.data.tags.get("lorasearch.role") == "trial"]
    parent = next(r for r in runs if r.data.tags.get("lorasearch.role") == "study")
    (child,) = [r for r in children if r.info.status == "FAILED"]
    assert child.data.tags["reason"] == "interrupted (Ctrl-C)"
    assert parent.info.status == "KILLED"


def test_non_finite_loss_fails_the_trial_at_once_and_the_study_goes_on(
    toy_data, tiny_bert, tmp_path, monkeypatch
):
    real_step, calls = trainer_module.Stepper.step, []

    def poisoned(self, batch, step):
        calls.append(step)
        loss = real_step(self, batch, step)
        return torch.tensor(float("nan")) if len(calls) == 3 else loss  # trial 0, its 3rd step

    monkeypatch.setattr(trainer_module.Stepper, "step", poisoned)
    first, second = _two_lora_trials(toy_data, tiny_bert, tmp_path).trials
    assert first.state == TrialState.FAIL
    assert TrialRecord.of(first).reason == "non-finite loss (nan) at step 3"
    assert second.state == TrialState.COMPLETE
    assert len(calls) == 3 + 10  # the bad trial stopped at its 3rd step


# --- bad input ------------------------------------------------------------------------------------


def test_bad_input_battery_one_line_exit_2_nothing_written(
    toy_data, tiny_bert, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    no_train = tmp_path / "no_train"
    no_train.mkdir()
    write_tsv(no_train / "dev.tsv", toy_rows(20, 1))
    write_tsv(no_train / "test.tsv", toy_rows(20, 2))
    empty = tmp_path / "empty"
    empty.mkdir()
    write_tsv(empty / "train.tsv", [])
    unseen = tmp_path / "unseen"
    unseen.mkdir()
    write_tsv(unseen / "train.tsv", toy_rows(40, 0))
    write_tsv(unseen / "dev.tsv", toy_rows(10, 1) + [("so so", "mixed")])
    typo = tmp_path / "typo.toml"
    typo.write_text("[lora]\nrnak = 4\n")
    out_of_range = tmp_path / "range.toml"
    out_of_range.write_text("[lora]\nrank = { low = 0, high = 8 }\n")
    export = tmp_path / "export"
    export.mkdir()
    (export / "keep.txt").write_text("mine")
    data = ["--data", str(toy_data), "--text-column", "sentence", "--model", str(tiny_bert)]
    search = ["search", "--trials", "1", "--steps", "5"]
    cases = {
        "unknown task": ([*search, "--task", "sst3"], "unknown task 'sst3'"),
        "data path missing": ([*search, "--data", str(tmp_path / "nope")], "data path not found"),
        "no train split": ([*search, "--data", str(no_train), "--text-column", "sentence"], "train"),
        "empty split": ([*search, "--data", str(empty), "--text-column", "sentence"], "empty"),
        "missing text column": ([*search, *data[:2], "--text-column", "body"], "'body'"),
        "missing label column": ([*search, *data, "--label-column", "stars"], "'stars'"),
        "unseen label": (
            [*search, "--data", str(unseen), "--text-column", "sentence"], "label 'mixed'"
        ),
        "unknown variant": ([*search, *data, "--variants", "lorax"], "unknown variant 'lorax'"),
        "knob out of range": ([*search, *data, "--space", str(out_of_range)], "rank"),
        "space typo": ([*search, *data, "--space", str(typo)], "rnak"),
        "trials 0": (["search", "--trials", "0", *data], "--trials must be >= 1"),
        "negative timeout": ([*search, *data, "--timeout", "-1"], "--timeout must be > 0"),
        "malformed storage": ([*search, *data, "--storage", "nonsense"], "malformed --storage"),
        "unreachable storage": (
            [*search, *data, "--storage", "postgresql://u:secret@127.0.0.1:1/x"],
            "cannot open storage",
        ),
        "malformed tracking uri": ([*search, *data, "--tracking-uri", "nonsense"], "--tracking-uri"),
        "model path missing": (
            [*search, *data[:4], "--model", str(tmp_path / "none")], "model path not found"
        ),
        "not a model": ([*search, *data[:4], "--model", str(tmp_path)], "not a model folder"),
        "budget below smallest": (
            [*search, *data, "--variants", "lora", "--max-params", "10"],
            "below the smallest configuration",
        ),
        "best without study": (["best", "--study", "ghost"], "no study 'ghost'"),
    }  # fmt: skip
    for name, (args, message) in cases.items():
        code = main(args)
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert code == 2, (name, err)
        assert len(lines) == 1 and lines[0].startswith("lorasearch: error:"), (name, err)
        assert message in lines[0] and "secret" not in lines[0], (name, lines[0])
        assert out == "", name
        assert not (tmp_path / "lorasearch.db").exists(), name
    assert not (tmp_path / "lorasearch.db").exists() and not (tmp_path / "mlflow.db").exists()

    # On a real study: `best` with no finished trial, and an export into a non-empty folder.
    storage = f"sqlite:///{tmp_path / 'real.db'}"
    assert main([*search, *data, "--storage", storage, "--study", "r", "--json"]) == 0
    capsys.readouterr()
    assert main(["best", "--study", "r", "--storage", storage, "--export", str(export)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (export / "keep.txt").read_text() == "mine" and len(list(export.iterdir())) == 1
    empty_storage = f"sqlite:///{tmp_path / 'empty.db'}"
    optuna.create_study(
        study_name="e", storage=empty_storage, directions=["maximize", "minimize"]
    ).set_user_attr("fixed", json.dumps({}))
    assert main(["best", "--study", "e", "--storage", empty_storage]) == 2
    assert "no finished trial" in capsys.readouterr().err


def test_worker_joins_a_study_with_its_task_space_and_sampler(toy_data, tiny_bert, tmp_path):
    storage = f"sqlite:///{tmp_path / 'w.db'}"
    assert main(["search", *_args(toy_data, tiny_bert, 10), "--storage", storage, "--study", "w",
                 "--trials", "1", "--sampler", "random", "--no-tracking"]) == 0  # fmt: skip
    assert main(["worker", "--study", "w", "--storage", storage, "--total-trials", "3",
                 "--device", "cpu", "--no-tracking"]) == 0  # fmt: skip
    study = optuna.load_study(study_name="w", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert {t.variant for t in trial_records(study)} == {"lora"}  # the study's space
    assert StudyRecord.of(study).settings["sampler"] == "random"
    assert main(["worker", "--study", "w", "--storage", storage]) == 2  # neither count given


def test_out_of_memory_fails_the_trial_with_its_reason_and_the_next_one_runs(
    toy_data, tiny_bert, tmp_path, monkeypatch
):
    real, released, calls = objective_module.run_trial, [], []

    def first_runs_out(spec, **kwargs):
        calls.append(spec)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(spec, **kwargs)

    monkeypatch.setattr(objective_module, "run_trial", first_runs_out)
    monkeypatch.setattr(objective_module, "release_memory", lambda: released.append(True))
    first, second = _two_lora_trials(toy_data, tiny_bert, tmp_path).trials
    assert first.state == TrialState.FAIL
    assert TrialRecord.of(first).reason == (
        "out of memory: CUDA out of memory. Tried to allocate 2.00 GiB"
    )
    assert released == [True]  # memory released once, for the failed trial
    assert second.state == TrialState.COMPLETE

"""One trial of the search: draw, count, check the budget, train through the rungs (with early
stopping), record.

Each trial's parameter count is computed before training, so a ``max_params`` budget rejects a
configuration without training it (and tells the sampler, as Optuna's per-trial constraint), and
rungs and early stopping can compare costs. Multi-fidelity (:mod:`fidelity`): at each rung below
the full budget the trial records its point (signal, params) and goes on only if it is promotable
among the points recorded at that rung so far (any worker); otherwise it ends PRUNED there. The
test split is scored only for a trial on the front when it ends (a trial dominated then never
rejoins the front). What a trial did is kept through :mod:`records`. With rungs, the trainer
keeps the latest rung's checkpoint in the trial's folder, and a retry of a killed trial resumes
from it (:mod:`checkpoints`).
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import optuna
from optuna.trial import TrialState

from lorasearch.adapters import build_adapter
from lorasearch.errors import LorasearchError, first_line
from lorasearch.search import checkpoints, fidelity, promotion, recording, records
from lorasearch.search.config import Fixed, SearchConfig
from lorasearch.search.early_stop import Finished, stop_reason
from lorasearch.search.progress import SearchProgress
from lorasearch.search.records import CONTINUES
from lorasearch.tracking.base import Tracking
from lorasearch.training.trainer import EvalPoint, TrainConfig, TrainResult
from lorasearch.training.trial import Trial, load_data, planned_counts, run_trial

BUDGET = "max_params"  # the constraint's name: trainable params over --max-params (<= 0 fits)


def make_objective(
    study: optuna.Study,
    fixed: Fixed,
    config: SearchConfig,
    progress: SearchProgress,
    tracker: Tracking,
):
    """The function Optuna calls per trial: returns (dev metric, trainable params)."""
    rungs = config.rungs(fixed.train.steps)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        try:
            return start(trial)
        except KeyboardInterrupt:  # (during training `run` has said so already)
            if not trial.user_attrs.get(records.FAIL_REASON):
                recording.record_reason(trial, "interrupted (Ctrl-C)")
            raise

    def start(trial: optuna.Trial) -> tuple[float, float]:
        recording.record_start(trial, f"{socket.gethostname()}:{os.getpid()}")
        if (earlier := promotion.duplicate_of(study, trial.number)) is not None:
            recording.record_duplicate(trial, earlier)
            _prune(
                trial,
                f"trial {earlier} already continues trial {trial.user_attrs[CONTINUES]} "
                "(promoted by two workers at once): not trained",
            )
        below_full = len(rungs) > 1  # rung checkpoints: only where there are rungs below R
        folder = checkpoints.trial_checkpoint(
            study, trial, config.storage, below_full, progress.warning
        )
        with folder as resume:
            return run(trial, resume)

    def run(trial: optuna.Trial, resume: checkpoints.Resume) -> tuple[float, float]:
        if config.fidelity:
            checkpoints.record_start(trial, resume)
        run_id = tracker.start_trial(trial.number, study.study_name)
        if run_id is not None:
            recording.record_run(trial, run_id)
        try:
            variant, knobs = config.space.suggest(trial, fixed.train.steps)
            recording.record_config(trial, variant, knobs)
            progress.trial_started(trial.number, variant, knobs)
            train = _rung_schedule(fixed.train, rungs, config.fidelity)
            tracker.trial_config(run_id, variant, knobs, asdict(train))
            spec = Trial(fixed.data, fixed.model, build_adapter(variant, **knobs), train)
            planned = planned_counts(spec).trainable
            over = planned - config.max_params if config.max_params else 0
            recording.record_plan(trial, planned, over)
            if config.max_params is not None:
                trial.set_constraint(BUDGET, over)  # what TPE, NSGA-II and GP steer by
                if over > 0:
                    _prune(
                        trial,
                        f"over budget: {planned:,} trainable params > --max-params "
                        f"{config.max_params:,}",
                    )
            stopper = (
                _early_stopper(study, trial, planned, config, len(load_data(fixed.data).dev))
                if config.early_stop
                else None
            )
            gate = config.fidelity and _rung_gate(study, trial, planned, rungs, config, resume)

            def on_eval(point: EvalPoint) -> str | None:
                tracker.evaluation(run_id, point.step, point.dev_metric, point.dev_loss)
                if gate and (reason := gate(point)):
                    return reason
                if stopper and early_stop_judges(point.step, rungs, resume.passed):
                    return stopper(point.step, point.dev_metric)
                return None

            def score_test(result: TrainResult) -> bool:  # only a trial on the front uses it
                if result.stopped_early:
                    return False
                return not dominated(study, result.dev_metric, result.trainable_params)

            with tempfile.TemporaryDirectory(prefix="lorasearch-") as folder:
                keep = run_id is not None and tracker.active
                result = run_trial(
                    spec,
                    on_eval=on_eval,
                    on_step=tracker.step if tracker.active else None,
                    progress=progress.trial_step,
                    export_dir=Path(folder) if keep else None,
                    score_test=score_test,
                    checkpoint=resume.folder,
                )
                if keep and not result.stopped_early:  # `best` exports this very adapter
                    tracker.log_adapter(run_id, Path(folder))
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:
            recording.record_reason(trial, "interrupted (Ctrl-C)")
            raise
        except Exception as exc:
            recording.record_reason(trial, failure_reason(exc))
            release_memory()
            raise
        recording.record_result(trial, result)
        if resume.continues is not None:  # its predecessor's steps are its predecessor's cost
            recording.record_steps_used(trial, result)
        if config.fidelity:
            checkpoints.record_end(trial, resume, result, rungs, planned, config.signal)
        if result.stopped_early:
            _prune(trial, result.stopped_early)
        return result.dev_metric, float(result.trainable_params)

    return objective


def _rung_schedule(train: TrainConfig, rungs: tuple[int, ...], fidelity: bool) -> TrainConfig:
    """The rungs are evaluated; with no ``--eval-every``, only they are (all of dev once, at R).
    Measured on SST-2 (6,735 dev examples): a full dev evaluation took 33 s on one core, 100
    steps' worth, so the usual five (every R/5) cost more than a 300-step trial's training, and
    in bench/tables/sst2.csv the best of 27 evaluations beat the last by 0.4 points on average."""
    every = train.eval_every or (rungs[-1] if fidelity else None)
    return replace(train, eval_steps=rungs[:-1], eval_every=every)


def planned_trainable(fixed: Fixed, variant: str, knobs: dict) -> int:
    """A configuration's trainable params, counted before it trains (``planned_counts``)."""
    spec = Trial(fixed.data, fixed.model, build_adapter(variant, **knobs), fixed.train)
    return planned_counts(spec).trainable


def check_budget(fixed: Fixed, config: SearchConfig) -> None:
    """A budget no configuration of the space fits is the user's error, said before any trial."""
    sizes = {}
    for variant in config.space.variants:
        knobs = config.space.smallest(variant, fixed.train.steps)
        sizes[variant] = planned_trainable(fixed, variant, knobs)
    variant = min(sizes, key=sizes.get)
    if sizes[variant] > config.max_params:
        raise LorasearchError(
            f"--max-params {config.max_params:,} is below the smallest configuration in the "
            f"space ({variant} at its lowest knobs: {sizes[variant]:,} trainable params)"
        )


def dominated(study: optuna.Study, dev_metric: float, params: int) -> bool:
    """Whether a COMPLETE trial of the study dominates (dev metric up, params down) a trial
    ending with these values: it would be off the front."""
    ending = fidelity.RungPoint(-1, dev_metric, params)
    return any(
        fidelity.dominates(fidelity.RungPoint(t.number, *t.values), ending)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    )


def _rung_gate(
    study: optuna.Study,
    trial: optuna.Trial,
    params: int,
    rungs: tuple[int, ...],
    config: SearchConfig,
    resume: checkpoints.Resume,
):
    """At each rung below the full budget: record the trial's point, promote the paused trials
    that now rank among the rung's promotions (``search/promotion.py``), and pause the trial
    (keeping its checkpoint; the reason) unless it ranks there itself. A resumed trial starts
    with the points of the rungs it passed before, and a continuation is not judged again at
    the rungs its predecessor passed."""
    points = dict(resume.points)
    full = rungs[-1]

    def on_eval(point: EvalPoint) -> str | None:
        if point.step not in rungs:
            return None
        rung = rungs.index(point.step) + 1
        if point.step == full:
            recording.record_rung(trial, rung)
            return None
        signal = fidelity.signal_of(point, config.signal)
        points[point.step] = (signal, params)
        recording.record_rung(trial, rung, points)
        if point.step <= resume.passed:
            return None
        peers = [
            fidelity.RungPoint(*peer)
            for peer in recording.rung_peers(study, point.step, trial.number)
        ]
        candidate = fidelity.RungPoint(trial.number, signal, params)
        everyone = [*peers, candidate]
        top = point.step == rungs[-2]
        chosen = fidelity.promotions(everyone, config.eta, top=top)
        promotion.promote(study, point.step, config.eta, top=top, skip=trial.number)
        if any(p.number == trial.number for p in chosen):
            return None
        if math.isnan(signal):
            return f"diverged at rung {rung} (step {point.step} of {full}): not promoted"
        resume.keep = resume.folder is not None
        recording.record_paused(trial, point.step)
        order = fidelity.ranked([p for p in everyone if not math.isnan(p.signal)])
        rank = next(i for i, p in enumerate(order, 1) if p.number == trial.number)
        return (
            f"paused at rung {rung} (step {point.step} of {full}): rank {rank} of {len(everyone)} "
            f"at this rung, where the top {len(chosen)} go on; a later promotion may continue it"
        )

    return on_eval


def early_stop_judges(step: int, rungs: tuple[int, ...], passed: int) -> bool:
    """Whether early stopping judges the evaluation after ``step``: not at a rung, which the
    promotions decide (a trial not promoted pauses, and a later promotion, such as the end of
    the search's spread over the params decades, may continue it; a stop is for good), nor
    where a continuation trains again over the rungs its predecessor passed (nor at the full
    budget, the last rung, where stopping saves nothing). Before this rule, the AG News budget
    study of R = 810 (bench/tables/budget_agnews_r810.sqlite3), built on a GPU and continued
    on a CPU without its checkpoints, lost its first three spread promotions (220k-2.2M
    params) at step 30, a rung they had passed, to early stopping."""
    return step not in rungs and step > passed


def _early_stopper(
    study: optuna.Study, trial: optuna.Trial, params: int, config: SearchConfig, dev_size: int
):
    def on_eval(step: int, metric: float) -> str | None:
        recording.record_partial(trial, step, metric)  # last point, for workers
        finished = finished_trials(study)
        return stop_reason(step, metric, params, finished, config.margin, dev_size)

    return on_eval


def finished_trials(study: optuna.Study) -> list[Finished]:
    """COMPLETE trials as the early-stopping rule sees them."""
    return [
        Finished(t.number, int(t.values[1]), t.curve, t.values[0])
        for t in records.trial_records(study, states=(TrialState.COMPLETE,))
    ]


def _prune(trial: optuna.Trial, reason: str) -> None:
    recording.record_reason(trial, reason, pruned=True)
    raise optuna.TrialPruned(reason)


def failure_reason(exc: Exception) -> str:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return "out of memory: " + first_line(exc)
    text = first_line(exc) if str(exc).strip() else ""
    return text if isinstance(exc, LorasearchError) else f"{type(exc).__name__}: {text}"


def release_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()

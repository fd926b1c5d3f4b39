"""Writing a running trial's record: the ``record_*`` calls the objective makes as a trial
draws, trains, reaches its rungs and ends. The keys come from :mod:`records`, the one place that
names them; readers use :class:`~lorasearch.search.records.TrialRecord`."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from lorasearch.search.records import (
    CONTINUES,
    CURVE,
    DUPLICATE,
    FAIL_REASON,
    KNOBS,
    LOSS_CURVE,
    OVER_BUDGET,
    PARTIAL,
    PAUSED,
    PLANNED,
    PRUNE_REASON,
    RESULT_FIELDS,
    RESUMED_FROM,
    RUN_ATTR,
    RUNG,
    RUNGS,
    STEPS_USED,
    VARIANT,
    WORKER,
)


def record_start(trial: optuna.Trial, worker: str) -> None:
    trial.set_user_attr(STEPS_USED, 0)
    trial.set_user_attr(WORKER, worker)


def record_run(trial: optuna.Trial, run_id: str) -> None:
    trial.set_user_attr(RUN_ATTR, run_id)


def record_config(trial: optuna.Trial, variant: str, knobs: dict[str, Any]) -> None:
    trial.set_user_attr(VARIANT, variant)
    trial.set_user_attr(KNOBS, knobs)


def record_plan(trial: optuna.Trial, planned: int, over_budget: int) -> None:
    trial.set_user_attr(PLANNED, planned)
    trial.set_user_attr(OVER_BUDGET, over_budget)


def record_partial(trial: optuna.Trial, step: int, metric: float) -> None:
    """The last dev evaluation of a running trial, for other workers to see."""
    trial.set_user_attr(PARTIAL, {str(step): metric})


def record_rung(
    trial: optuna.Trial, rung: int, points: dict[int, tuple[float, int]] | None = None
) -> None:
    """The rung the trial has reached (1-based) and its points so far at the rungs below the full
    budget (step -> (signal, params)), for the trials that reach those rungs later."""
    trial.set_user_attr(RUNG, rung)
    if points is not None:
        trial.set_user_attr(RUNGS, {str(step): list(point) for step, point in points.items()})


def record_resumed(trial: optuna.Trial, step: int) -> None:
    """The step a retried trial resumed at (0: from the start; it clears the failed trial's)."""
    trial.set_user_attr(RESUMED_FROM, step)


def rung_peers(study: optuna.Study, step: int, exclude: int) -> list[tuple[int, float, int]]:
    """``(number, signal, params)`` of every configuration but trial ``exclude``'s that recorded a
    point at rung ``step`` (any worker), once each: failed trials are left out (a retry counts
    for its configuration), and so is a paused trial once a promotion continues it (the
    continuation carries its points), and a duplicate promotion."""
    trials = study.get_trials(deepcopy=False)
    continued = {t.user_attrs[CONTINUES] for t in trials if CONTINUES in t.user_attrs}
    peers = []
    for trial in trials:
        point = trial.user_attrs.get(RUNGS, {}).get(str(step))
        if (
            point is None
            or trial.number == exclude
            or trial.state == TrialState.FAIL
            or trial.number in continued
            or DUPLICATE in trial.user_attrs
        ):
            continue
        peers.append((trial.number, float(point[0]), int(point[1])))
    return peers


def record_steps_used(trial: optuna.Trial, result) -> None:
    """A resumed run's own steps (a continuation's predecessor recorded the steps before)."""
    own = result.steps - result.resumed_from + result.preliminary_steps
    trial.set_user_attr(STEPS_USED, own)


def record_paused(trial: optuna.Trial, step: int) -> None:
    """The trial stops at rung ``step`` keeping its checkpoint: a later promotion continues it."""
    trial.set_user_attr(PAUSED, step)


def record_duplicate(trial: optuna.Trial, earlier: int) -> None:
    """A promotion that trial ``earlier`` already carries out (two workers promoted together)."""
    trial.set_user_attr(DUPLICATE, earlier)


def record_result(trial: optuna.Trial, result) -> None:
    """A trained trial's :class:`TrainResult`: curve, steps, metrics, counts, timings."""
    trial.set_user_attr(CURVE, {str(p.step): p.dev_metric for p in result.curve})
    losses = {
        str(p.step): loss
        for p in result.curve
        if (loss := getattr(p, "dev_loss", None)) is not None
    }
    if losses:
        trial.set_user_attr(LOSS_CURVE, losses)
    trial.set_user_attr(STEPS_USED, result.steps + result.preliminary_steps)
    for name in RESULT_FIELDS:
        trial.set_user_attr(name, getattr(result, name))


def record_reason(trial: optuna.Trial, reason: str, pruned: bool = False) -> None:
    trial.set_user_attr(PRUNE_REASON if pruned else FAIL_REASON, reason)

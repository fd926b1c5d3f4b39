"""Asynchronous successive halving with pauses: a trial not promoted at a rung pauses there,
and a later promotion continues it from its checkpoint.

This is ASHA as its paper runs it (Li et al. 2020: a free worker first promotes any
configuration that is in the top ``1/eta`` of its rung and not yet promoted, and only then starts
a new one), on Optuna trials, which cannot be paused:

- a trial that reaches a rung below the full budget records its point and goes on if it is among
  the rung's :func:`~lorasearch.search.fidelity.promotions`; otherwise it ends PRUNED *paused*
  (``paused_at``), keeping its rung checkpoint;
- whichever trial records a point at a rung promotes the paused trials that now rank in the
  rung's promotions: it enqueues, for each, a new trial with its parameters and its rung record
  (Optuna's ``enqueue_trial``), marked ``continues``. Optuna hands waiting trials out before it
  samples new ones, so a promotion runs next, on any worker. The continuation takes over the
  paused trial's checkpoint folder (``search/checkpoints.py``) and resumes at its rung; on a
  machine that cannot see that folder it trains again from step 0, and the rungs already passed
  are not judged again;
- two workers may promote the same paused trial at once: a continuation that finds an earlier,
  live one for the same trial ends at once (``duplicate_of``, no training). The attrs that mark
  both were written when they were enqueued, before either ran, so the earlier one always sees
  no rival and the later one always sees it;
- when the search has started all its configurations (``--trials``), :func:`finish` promotes at
  each rung the top ``ceil(n / eta)`` rather than ``n // eta``, and at least ``min(n, eta)``, so
  that the best configurations of the last, unfilled rungs reach the full budget (as the last
  bracket of synchronous successive halving rounds up) and a short search ends with at least
  eta trials at the full budget rather than one; and as many again spread over the params
  decades (``fidelity.spread``), so the front's large end reaches it too; until nothing more
  is promoted.

Why pause rather than promote the first arrivals (Optuna's ``SuccessiveHalvingPruner`` promotes
a trial that is the best so far, so the first trials of a study go to the full budget): replayed
on the learning-curve table (bench/replay.py bench/tables/sst2.csv, 52 configurations, R = 243,
30 seeds, budget 13 R), with rungs from R/27 and promotion by hypervolume contribution, pausing
reached random search's final hypervolume in 0.415 of its steps and TPE's in 0.445; promoting on
arrival with the same ranking needed 0.415 and 0.53, and the previous default (rungs R/3 and R,
promotion on arrival, epsilon-net ranking) 0.81 and never.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from lorasearch.search import fidelity
from lorasearch.search.recording import rung_peers
from lorasearch.search.records import CONTINUES, DUPLICATE, PAUSED, RUNG, RUNGS

_RETRY = optuna.storages.RetryHeartbeatStaleTrialCallback
_LIVE = (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)


def rung_points(study: optuna.Study, step: int) -> list[fidelity.RungPoint]:
    """Every configuration's point at rung ``step``, once each (see ``rung_peers``)."""
    return [fidelity.RungPoint(*peer) for peer in rung_peers(study, step, exclude=-1)]


def promote(
    study: optuna.Study,
    step: int,
    eta: int,
    *,
    top: bool = False,
    final: bool = False,
    skip: int = -1,
) -> list[int]:
    """Enqueue a continuation of every paused trial among rung ``step``'s promotions (``top``:
    the last rung below the full budget; ``final``: the end of the search; see
    ``fidelity.promotion_count``) that nothing continues yet; ``skip``: a trial that continues
    in place. Returns the numbers of the trials promoted."""
    points = rung_points(study, step)
    chosen = {p.number for p in fidelity.promotions(points, eta, top=top, final=final)}
    trials = study.get_trials(deepcopy=False)
    continued = {t.user_attrs[CONTINUES] for t in trials if CONTINUES in t.user_attrs}
    promoted = []
    for trial in trials:
        if (
            trial.number in chosen
            and trial.number != skip
            and trial.user_attrs.get(PAUSED) == step
            and trial.number not in continued
            and trial.state in (TrialState.RUNNING, TrialState.PRUNED)
        ):
            _enqueue(study, trial)
            promoted.append(trial.number)
    return promoted


def _enqueue(study: optuna.Study, paused: FrozenTrial) -> None:
    attrs = {key: paused.user_attrs[key] for key in (RUNG, RUNGS) if key in paused.user_attrs}
    study.enqueue_trial(
        dict(paused.params), user_attrs=attrs | {CONTINUES: paused.number}, skip_if_exists=False
    )


def duplicate_of(study: optuna.Study, number: int) -> int | None:
    """The earlier live continuation of the same paused trial, if trial ``number`` is a
    continuation that another one already carries out (a trial it retries is no rival)."""
    trials = study.get_trials(deepcopy=False)
    me = next(t for t in trials if t.number == number)
    target = me.user_attrs.get(CONTINUES)
    if target is None:
        return None
    retried = set(_RETRY.retry_history(me))
    for other in trials:
        if (
            other.number < number
            and other.state in _LIVE
            and other.user_attrs.get(CONTINUES) == target
            and DUPLICATE not in other.user_attrs
            and other.number not in retried
        ):
            return other.number
    return None


def is_continuation(trial: FrozenTrial) -> bool:
    return CONTINUES in trial.user_attrs


def pending(study: optuna.Study) -> bool:
    """Whether a promotion waits to run or runs (on any worker)."""
    return any(
        is_continuation(t)
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
    )


def finish(study: optuna.Study, rungs: tuple[int, ...], eta: int) -> list[int]:
    """The end of a search's new configurations: promote at every rung below the full budget
    the top ``ceil(n / eta)``, at least ``min(n, eta)``, and as many again spread over the
    params decades (``fidelity.promotions(final=True)``; lowest rung first). Returns the
    trials promoted (none: done)."""
    promoted = []
    for step in rungs[:-1]:
        promoted += promote(study, step, eta, final=True)
    return promoted

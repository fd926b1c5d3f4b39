"""What TPE learns from in a multi-fidelity search: every configuration's point at one rung.

Optuna's TPE splits the trials it has seen into a good and a bad group. In a multi-objective
study it ranks only COMPLETE trials by their values; a PRUNED one has no values (``Trial.report``
raises in MO studies, optuna#3450), so TPE ranks it nowhere. Under ASHA with pauses only the
trials promoted to the full budget R are COMPLETE, and the early rungs promote the small, fast
learners: in the R = 810 budget searches (``bench/tables/budget_{sst2,agnews}_r810.sqlite3``)
every trial that reached R was a VeRA, and TPE, learning from those alone, drew VeRA for 20 of
the last 22 new configurations on AG News (22 of 48 in all) and 22 of the last 24 on SST-2. The
front could not span more than a fraction of a decade.

The view here is BOHB's rule (Falkner et al. 2018: fit the model on the largest budget that has
enough observations) on Optuna's terms. It picks the highest rung below R at which at least
``min_points`` configurations recorded a point, and shows TPE each configuration once:

- one that recorded a point at that rung, as COMPLETE with values (its rung signal, log10 of its
  trainable params): the signal the promotions rank by, and params on the scale of the search's
  hypervolume (TPE's tie-break inside a Pareto layer is a hypervolume subset selection, which on
  raw params gives the smallest configurations nearly all the area);
- one that did not get that far, as it is: PRUNED without values (TPE's bad group), or
  infeasible (over ``--max-params``);
- a paused trial that a finished continuation carries on is left out (the continuation holds
  its points), and so is a duplicate promotion.

With no rung that full (the first configurations, or a search without rungs) TPE sees the
study as it is.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lorasearch.search.records import CONTINUES, DUPLICATE, RUNGS

_ENDED = (TrialState.COMPLETE, TrialState.PRUNED)


class RungView:
    """``study`` as :func:`view_trials` shows it to a sampler: the sampler reads trials through
    ``_get_trials`` / ``get_trials``; everything else is the study's own."""

    def __init__(self, study: optuna.Study, min_points: int):
        self._study = study
        self._trials = view_trials(study.get_trials(deepcopy=False), min_points)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False):
        del use_cache  # the view is built once per sampling call
        return self.get_trials(deepcopy, states)

    def get_trials(self, deepcopy: bool = True, states=None) -> list[FrozenTrial]:
        trials = [t for t in self._trials if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials


def view_trials(trials: list[FrozenTrial], min_points: int) -> list[FrozenTrial]:
    """``trials`` as TPE should see them (the module's docstring); unchanged when no rung has
    ``min_points`` configurations."""
    kept = configurations(trials)
    counts = Counter(step for t in kept for step in t.user_attrs.get(RUNGS, {}))
    full = [int(step) for step, n in counts.items() if n >= min_points]
    if not full:
        return trials
    rung = str(max(full))
    running = [t for t in trials if t.state == TrialState.RUNNING]
    return sorted([_at_rung(t, rung) for t in kept] + running, key=lambda t: t.number)


def configurations(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The ended trials, one per configuration: a paused trial is left out once a continuation
    of it has ended (that one carries its points on), and duplicate promotions are left out."""
    carried = {
        t.user_attrs[CONTINUES]
        for t in trials
        if CONTINUES in t.user_attrs and t.state in _ENDED and DUPLICATE not in t.user_attrs
    }
    return [
        t
        for t in trials
        if t.state in _ENDED and t.number not in carried and DUPLICATE not in t.user_attrs
    ]


def _at_rung(trial: FrozenTrial, rung: str) -> FrozenTrial:
    point = trial.user_attrs.get(RUNGS, {}).get(rung)
    if point is None or not math.isfinite(float(point[0])):
        if trial.state == TrialState.PRUNED:
            return trial
        shown = copy.copy(trial)  # COMPLETE without a point there (it stopped before the rung)
        shown.state, shown.values = TrialState.PRUNED, None
        return shown
    shown = copy.copy(trial)
    shown.state = TrialState.COMPLETE
    shown.values = [float(point[0]), math.log10(max(int(point[1]), 1))]
    return shown

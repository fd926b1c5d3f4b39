"""An alternative TPE for the multi-fidelity search, measured and not adopted: TPE that learns
from every configuration's point at one rung, not only from the trials that reached R.

Optuna's TPE splits the trials it has seen into a good and a bad group. In a multi-objective
study it ranks only COMPLETE trials by their values; a PRUNED one has no values (``Trial.report``
raises in MO studies, optuna#3450), so TPE ranks it nowhere. Under ASHA with pauses only the
trials promoted to the full budget R are COMPLETE, and the early rungs promote the small, fast
learners: in the R = 810 budget searches (``bench/tables/budget_{sst2,agnews}_r810.sqlite3``)
every trial that reached R was a VeRA, and TPE drew VeRA for 17 of the last 22 new AG News
configurations (22 of 48 in all).

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

Measured live (``bench/sampler_live.py``, SST-2 + MiniLM, 48 configurations, R = 270, search
seeds 0 and 1; ``bench/tables/sampler_live.md``), it did not beat Optuna's TPE: it still drew
VeRA for about half its configurations (VeRA is what wins the low rungs too), and its front at R
had the lower hypervolume on both seeds (1.178 and 1.127 against 1.239 and 1.199) for about as
many steps (6,102 against 5,934 on average), and spanned fewer decades (1.05 against 1.68). So the search's "tpe" stays Optuna's own; this is kept to measure it again.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lorasearch.search.records import CONTINUES, DUPLICATE, RUNGS

NAME = "tpe_rung"

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


class RungTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE reading the study through :class:`RungView`: at the highest rung with at
    least its startup count of configurations, each one's point."""

    def _view(self, study: optuna.Study) -> RungView:
        return RungView(study, max(self._n_startup_trials, 1))

    def infer_relative_search_space(self, study, trial):
        return super().infer_relative_search_space(self._view(study), trial)

    def sample_relative(self, study, trial, search_space):
        return super().sample_relative(self._view(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        view = self._view(study)
        return super().sample_independent(view, trial, param_name, param_distribution)


def register() -> None:
    """Make ``--sampler tpe_rung`` (``SearchConfig(sampler=...)``) this sampler, with the
    default TPE's arguments (``search/samplers.py``)."""
    from lorasearch.search.samplers import SAMPLERS

    default = SAMPLERS["tpe"]

    def factory(config, seed: int) -> RungTPESampler:
        plain = default(config, seed)
        return RungTPESampler(
            multivariate=True, group=True, seed=seed, n_startup_trials=plain._n_startup_trials
        )

    SAMPLERS[NAME] = factory

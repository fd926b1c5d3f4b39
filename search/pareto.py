"""Hypervolume of the (dev metric up, trainable parameters down) front.

The front itself is Optuna's ``study.best_trials`` (``records.front``); the hypervolume is
measured in (metric, log10 params) against the reference point (chance-level metric, log10 of
the full model's parameters), so it rewards both accuracy and orders of magnitude saved.
Optuna 5 has no public hypervolume function: ``optuna._hypervolume.compute_hypervolume`` is what
its own ``plot_hypervolume_history`` uses.
"""

from __future__ import annotations

import math

import numpy as np
from optuna._hypervolume import compute_hypervolume

from lorasearch.search.records import TrialRecord


def hypervolume(trials: list[TrialRecord], chance: float, full_params: int) -> float:
    """Area the finished trials dominate, from the reference (chance, log10 full_params)."""
    points = [
        (-t.values[0], math.log10(max(t.values[1], 1)))
        for t in trials
        if t.state == "COMPLETE" and t.values[0] > chance and t.values[1] < full_params
    ]
    if not points:
        return 0.0
    reference = np.array([-chance, math.log10(full_params)])
    return float(compute_hypervolume(np.array(points), reference))


def hypervolume_history(trials: list[TrialRecord], chance: float, full_params: int) -> list[float]:
    """The hypervolume after each trial, in trial-number order."""
    ordered = sorted(trials, key=lambda t: t.number)
    return [hypervolume(ordered[: i + 1], chance, full_params) for i in range(len(ordered))]

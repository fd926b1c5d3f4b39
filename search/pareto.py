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
    points = [(t.values[0], t.values[1]) for t in trials if t.state == "COMPLETE"]
    return points_hypervolume(points, chance, full_params)


def points_hypervolume(points: list[tuple[float, float]], chance: float, full_params: int) -> float:
    """The same for (metric, params) pairs (bench/replay.py's table configurations)."""
    kept = [(-m, math.log10(max(n, 1))) for m, n in points if m > chance and n < full_params]
    if not kept:
        return 0.0
    reference = np.array([-chance, math.log10(full_params)])
    return float(compute_hypervolume(np.array(kept), reference))


def hypervolume_history(trials: list[TrialRecord], chance: float, full_params: int) -> list[float]:
    """The hypervolume after each trial, in trial-number order."""
    ordered = sorted(trials, key=lambda t: t.number)
    return [hypervolume(ordered[: i + 1], chance, full_params) for i in range(len(ordered))]

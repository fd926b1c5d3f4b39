"""Pareto-aware early stopping for a multi-objective study (Optuna's pruners are single-objective).

At each dev evaluation, a running trial is stopped when some finished trial with no more
trainable parameters was ahead of it at the same step, and ended above the running trial's
current metric, each by more than ``margin`` plus the noise of the dev set: the cheaper trial
already does better, so this one can only land behind it on the front.

The noise is ``Z`` standard errors of the difference of two accuracies measured on ``dev_size``
examples. Without it, on 300 dev examples, a cheap trial's chance bump at its first evaluation
(0.587 vs 0.543) stopped a trial that would have led the front (0.803 at its end), costing 29% of
the hypervolume (bench/search.py, 30-step trials). What the noise buys, replayed offline over
16 TPE trials (bench/early_stop_replay.py): at 30 steps, z = 2 saves 6% of steps at the full
hypervolume and z <= 1.5 (margin 0.01) 32% at 0.55x; at 60 steps, 17.5% at 1.00x against 37-44%
at 0.79x. Curves on SST-2 sit at the majority class for the first evaluations and the eventual
leader is often among them, so a safe rule saves more as trials get longer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z = 2.0  # standard errors a lead must exceed, on top of the margin


@dataclass(frozen=True)
class Finished:
    """What the rule needs of a finished trial: its cost, its curve and where it ended."""

    number: int
    params: int
    curve: dict[int, float]  # step -> dev metric
    final: float


def noise(a: float, b: float, dev_size: int, z: float = Z) -> float:
    """``z`` standard errors of the difference of two metrics near ``a`` and ``b`` on
    ``dev_size`` examples (binomial, as for accuracy; 0 when the size is unknown)."""
    if dev_size <= 0:
        return 0.0
    q = min(max((a + b) / 2, 0.0), 1.0)
    return z * math.sqrt(2 * q * (1 - q) / dev_size)


def stop_reason(
    step: int,
    metric: float,
    params: int,
    finished: list[Finished],
    margin: float,
    dev_size: int = 0,
    z: float = Z,
) -> str | None:
    """Why the running trial (``params``, ``metric`` at ``step``) should stop, or None."""
    for other in finished:
        at_step = other.curve.get(step)
        if other.params > params or at_step is None:
            continue
        if all(value >= metric + margin + noise(value, metric, dev_size, z)
               for value in (at_step, other.final)):  # fmt: skip
            return (
                f"trails trial {other.number} ({other.params:,} <= {params:,} params) at step "
                f"{step}: {metric:.4f} vs {at_step:.4f}, which ended at {other.final:.4f}"
            )
    return None

"""Pareto-aware early stopping for a multi-objective study (Optuna's pruners are single-objective).

At each dev evaluation, a running trial is stopped when some finished trial with no more
trainable parameters was ahead of it at the same step by at least ``margin`` and ended at least
``margin`` above the running trial's current metric: the cheaper trial already does better, so
this one can only land behind it on the front.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finished:
    """What the rule needs of a finished trial: its cost, its curve and where it ended."""

    number: int
    params: int
    curve: dict[int, float]  # step -> dev metric
    final: float


def stop_reason(
    step: int, metric: float, params: int, finished: list[Finished], margin: float
) -> str | None:
    """Why the running trial (``params``, ``metric`` at ``step``) should stop, or None."""
    for other in finished:
        at_step = other.curve.get(step)
        if (
            other.params <= params
            and at_step is not None
            and at_step >= metric + margin
            and other.final >= metric + margin
        ):
            return (
                f"trails trial {other.number} ({other.params:,} <= {params:,} params) at step "
                f"{step}: {metric:.4f} vs {at_step:.4f}, which ended at {other.final:.4f}"
            )
    return None

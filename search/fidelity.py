"""Multi-fidelity promotion: rungs at geometric fractions of the budget, and MO-ASHA's rule.

A trial is trained in one piece; at each rung (``rung_steps``) it records its point (signal,
trainable params) and continues only if :func:`promotable` among the points other trials
recorded at the same rung. Asynchronous successive halving (ASHA, Li et al. 2020) in the form
Optuna's ``SuccessiveHalvingPruner`` uses (a trial decides alone, from what its peers recorded,
and a promoted trial simply keeps training), with the ranking of MO-ASHA (Salinas et al. 2021,
syne-tune ``schedulers/multiobjective``): non-dominated sorting, then an epsilon-net inside a
layer.

The rule, for a candidate and ``n`` points in all (its peers at the rung plus itself):

- Rank: Pareto layers (signal up, params down; :func:`pareto_layers`), as syne-tune's
  ``nondominated_sort``; inside a layer, the epsilon-net order of ``compute_epsilon_net``: the
  point with the best signal first, then each time the point farthest from those already chosen
  (Euclidean, in (signal, log10 params) each scaled to the rung's range, so that neither unit
  dominates; syne-tune uses raw values), so a partly filled last layer keeps the front's spread.
- How many: the top ``n // eta`` points are promoted (Optuna's ``promotable_idx + 1``). Syne-tune's
  MO-ASHA continues a trial whose rank is within ``n / eta`` (about one more); Optuna's count is
  the ASHA paper's and keeps the budget arithmetic exact (a third survive each rung at eta = 3).
- Few peers (``n < eta``, so ``n // eta == 0``): Optuna cannot pause a trial to wait for peers,
  so it promotes a trial that is the best so far. Here "best" is "not dominated": the candidate is
  promoted if it lies in the first layer. (Syne-tune promotes the first arrival and, with
  ``n / eta`` rather than ``n // eta``, most early ones.)
- Ties: an identical point (same signal, same params) never dominates; ties go the candidate's
  way, as Optuna's ``value >= competing[...]``: a candidate equal to a selected point is promoted.
  Inside the epsilon-net, equal distances go to the lower trial number (deterministic).

Signals are higher-is-better: ``dev_metric`` as recorded, ``dev_loss`` (dev cross-entropy) as
its negative (:func:`signal_of`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lorasearch.errors import LorasearchError

if TYPE_CHECKING:
    from lorasearch.training.trainer import EvalPoint

DEFAULT_ETA = 3
# Without --min-steps: R/eta and R. Measured by replaying strategies on the learning-curve
# table (bench/replay.py bench/tables/sst2.csv, R = 243, 20 seeds, budget a quarter of the
# table x R), final hypervolume: at 34 configurations, rungs from R/27 0.777 +- 0.160, R/3 alone
# 0.886 +- 0.052, random search at full budget 0.880 +- 0.057 (with deep rungs few trials reach
# R and the front starves); at 47, 0.907 +- 0.048, 0.914 +- 0.046 and 0.892 +- 0.052. R/3 was
# never worse, and at R/27 the -dev cross-entropy ranks configurations poorly (Spearman 0.35 with
# the final metric at 47 configurations). Deeper rungs stay one option away (--min-steps).
DEFAULT_RUNGS = 2
# ... but no default rung below this step. Measured on the learning-curve tables (batch 32,
# SST-2, MiniLM): the Spearman correlation of -dev cross-entropy with the full-budget dev
# metric was 0.82 at step 5 (sst2_pilot, R = 135) and 0.35 at step 9 (sst2, R = 243), nothing
# was measured below 5, and a rung at step 1 (R = 27) pruned trials after a single step.
MIN_RUNG_STEPS = 5
SIGNALS = ("dev_loss", "dev_metric")


def rung_steps(
    max_steps: int, min_steps: int | None = None, eta: int = DEFAULT_ETA
) -> tuple[int, ...]:
    """The rungs, ascending: ``max_steps // eta**k`` for k = 0, 1, ... while at least
    ``min_steps`` (default ``max_steps // eta`` but at least ``MIN_RUNG_STEPS``, and at most
    ``max_steps``); the last is ``max_steps``."""
    for name, value in (("--max-steps", max_steps), ("--eta", eta)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise LorasearchError(f"{name} must be an integer, got {value!r}")
    if max_steps < 1:
        raise LorasearchError(f"--max-steps must be >= 1, got {max_steps}")
    if eta < 2:
        raise LorasearchError(f"--eta must be >= 2, got {eta}")
    if min_steps is None:
        min_steps = min(max(MIN_RUNG_STEPS, max_steps // eta ** (DEFAULT_RUNGS - 1)), max_steps)
    elif isinstance(min_steps, bool) or not isinstance(min_steps, int):
        raise LorasearchError(f"--min-steps must be an integer, got {min_steps!r}")
    if min_steps < 1:
        raise LorasearchError(f"--min-steps must be >= 1, got {min_steps}")
    if min_steps > max_steps:
        raise LorasearchError(f"--min-steps ({min_steps}) must be <= --max-steps ({max_steps})")
    rungs, k = [], 0
    while (step := max_steps // eta**k) >= min_steps:
        rungs.append(step)
        k += 1
    return tuple(reversed(rungs))


@dataclass(frozen=True)
class RungPoint:
    """One trial at one rung: its number, its signal there (higher is better), its params."""

    number: int
    signal: float
    params: int


def dominates(a: RungPoint, b: RungPoint) -> bool:
    """``a`` is no worse than ``b`` in both (signal up, params down) and better in one."""
    return (
        a.signal >= b.signal
        and a.params <= b.params
        and (a.signal > b.signal or a.params < b.params)
    )


def _front(points: list[RungPoint]) -> list[RungPoint]:
    """The non-dominated points, in O(n log n): sweep by params ascending; a point survives if
    it has the best signal of its size and beats every strictly smaller point's signal."""
    front, best_smaller = [], -math.inf
    ordered = sorted(points, key=lambda p: (p.params, -p.signal))
    i = 0
    while i < len(ordered):
        size, top = ordered[i].params, ordered[i].signal
        j = i
        while j < len(ordered) and ordered[j].params == size:
            j += 1
        if top > best_smaller:
            front.extend(p for p in ordered[i:j] if p.signal == top)
            best_smaller = top
        i = j
    return front


def pareto_layers(points: list[RungPoint]) -> list[list[RungPoint]]:
    """Non-dominated sorting: the first layer is the front, the next the front of the rest, ...
    Each layer in trial-number order."""
    remaining = list(points)
    layers = []
    while remaining:
        ids = {id(p) for p in _front(remaining)}
        layers.append(sorted((p for p in remaining if id(p) in ids), key=lambda p: p.number))
        remaining = [p for p in remaining if id(p) not in ids]
    return layers


def _epsilon_net(layer: list[RungPoint], everyone: list[RungPoint]) -> list[RungPoint]:
    """The layer ordered for spread: best signal first, then farthest from those chosen."""

    def scale(values):
        low, high = min(values), max(values)
        return lambda v: (v - low) / (high - low) if high > low else 0.0

    by_signal = scale([p.signal for p in everyone])
    by_size = scale([math.log10(max(p.params, 1)) for p in everyone])

    def coords(p):
        return by_signal(p.signal), by_size(math.log10(max(p.params, 1)))

    rest = sorted(layer, key=lambda p: (-p.signal, p.params, p.number))
    order = [rest.pop(0)]
    while rest:

        def gap(p):
            x, y = coords(p)
            return min(math.hypot(x - a, y - b) for a, b in map(coords, order))

        best = max(rest, key=lambda p: (gap(p), -p.number))
        order.append(best)
        rest.remove(best)
    return order


def ranked(points: list[RungPoint], limit: int | None = None) -> list[RungPoint]:
    """The points in promotion order: layer by layer, each layer in epsilon-net order; with
    ``limit``, only the first ``limit`` (layers past it are never sorted)."""
    full, limit = limit is None, len(points) if limit is None else limit
    order, remaining = [], list(points)
    while remaining and len(order) < limit:
        ids = {id(p) for p in _front(remaining)}
        layer = sorted((p for p in remaining if id(p) in ids), key=lambda p: p.number)
        remaining = [p for p in remaining if id(p) not in ids]
        spread = full or len(order) + len(layer) > limit  # only a cut layer needs its order
        order.extend(_epsilon_net(layer, points) if spread else layer)
    return order[:limit]


def promotable(candidate: RungPoint, peers: list[RungPoint], eta: int) -> bool:
    """Whether ``candidate`` continues past the rung where ``peers`` (other trials) recorded
    theirs: in the top ``n // eta`` of the ranking (n counts the candidate), or, while
    ``n < eta``, not dominated by any peer. See the module docstring."""
    if eta < 2:
        raise LorasearchError(f"--eta must be >= 2, got {eta}")
    if math.isnan(candidate.signal):  # a diverged trial stops
        return False
    others = [p for p in peers if p.number != candidate.number and not math.isnan(p.signal)]
    everyone = [*others, candidate]
    keep = len(everyone) // eta
    if keep == 0:
        return not any(dominates(p, candidate) for p in others)
    chosen = ranked(everyone, keep)
    return any(
        p is candidate or (p.signal == candidate.signal and p.params == candidate.params)
        for p in chosen
    )


def signal_of(point: EvalPoint, name: str) -> float:
    """The promotion signal of an evaluation, higher is better: ``dev_metric`` as is,
    ``dev_loss`` (dev cross-entropy) negated."""
    if name not in SIGNALS:
        raise LorasearchError(f"unknown signal '{name}' (choose from {', '.join(SIGNALS)})")
    if name == "dev_metric":
        return float(point.dev_metric)
    loss = getattr(point, "dev_loss", None)
    if loss is None:
        raise LorasearchError("this evaluation has no dev cross-entropy (dev_loss)")
    return -float(loss)

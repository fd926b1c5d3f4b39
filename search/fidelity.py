"""Multi-fidelity promotion: rungs at geometric fractions of the budget, and MO-ASHA's rule.

A trial is trained in one piece; at each rung (``rung_steps``) it records its point (signal,
trainable params), and the rung's :func:`promotions` say which configurations go on. The
search runs asynchronous successive halving (ASHA, Li et al. 2020) with pauses
(``search/promotion.py``): a trial not promoted pauses, and a later promotion continues it.
The ranking is MO-ASHA's (Salinas et al. 2021, syne-tune ``schedulers/multiobjective``):
non-dominated sorting, then an order inside a layer that keeps the front's spread; here that
order is by hypervolume contribution rather than syne-tune's epsilon-net.

The rule, for the ``n`` points recorded at a rung:

- Rank: Pareto layers (signal up, params down; :func:`pareto_layers`), as syne-tune's
  ``nondominated_sort``; inside a layer, greedily the point that adds most to the area the
  points chosen so far dominate in (signal, log10 params): the search's own hypervolume, on the
  rung's signal. Measured by replaying the learning-curve table (bench/replay.py
  bench/tables/sst2.csv, 52 configurations, 30 seeds, rungs from R/27, with pauses): steps to
  reach random search's final hypervolume 0.415 of its budget by contribution, 0.47 by the
  epsilon-net (Euclidean in (signal, log10 params) scaled to the rung's range). A front's
  hypervolume is mostly its small, good configurations (in the table one VeRA at 23k params
  holds 0.918 of the full front's 0.954), and the contribution says so; the epsilon-net spends
  promotions on spread across sizes that adds little.
- How many (:func:`promotion_count`): the top ``n // eta`` (the ASHA paper's count; Optuna's
  ``promotable_idx + 1``), so a third go on at each rung at eta = 3; none while ``n < eta``: the
  first trials wait for peers instead of going to the full budget as Optuna's pruner sends
  them. At the top rung (the last below the full budget) the count rounds up, ``ceil(n /
  eta)``: the first trial there goes on to the full budget at once, so the front has its
  first point after about eta**(rungs - 2) configurations instead of eta**(rungs - 1). Replayed (bench/replay.py
  bench/tables/sst2.csv, 64 configurations, budget 16 R), steps to reach random's / TPE's final
  hypervolume as a fraction of their budget: rounding up at the top rung 0.325 / 0.485 (30
  seeds; 0.325 / 0.515 over 60), floor there 0.375 / 0.505 (0.385 / 0.505 over 60); rounding
  up at the top two rungs 0.375 / 0.570. At the end of a search (``promotion.finish``) every
  rung rounds up and sends at least ``min(n, eta)`` on, so a search that started eta
  configurations ends with at least eta at the full budget.
- The end of a search also spreads (:func:`spread`): each rung sends on as many again, taken
  round-robin over the params decades (each decade's best, then each one's second, ...), so
  large configurations that small ones dominate at the early rungs get to the full budget,
  where they may beat them. Replayed (bench/replay.py, 30 seeds, budget 16 R): the ratios to
  random / TPE are unchanged, SST-2 0.325 / 0.485 and AG News 0.305 / 0.395 (the end comes
  after they are reached); the final hypervolume rises (SST-2 0.9478 to 0.9525, AG News
  2.2944 to 2.2967), and on AG News the front at R spans 2.21 decades instead of 0.11 (one 4k
  VeRA), its pick the 1.1M-param LoRA-drop that ties the table's best on dev (28 of 30 seeds)
  instead of the VeRA (30 of 30). Refit over eight seeds (bench/refit_check.py), the new pick
  is 0.78 pt above the table's best on test, the VeRA was 0.73 pt below it. The price is paid
  at the end: a search run until nothing more goes on spends 14.3 R of steps instead of 10.1
  on AG News and 15.0 instead of 11.6 on SST-2 (30 seeds, all 64 configurations started).
  Only the first round (each decade's best, 12.0 / 12.6 R) left every AG News pick the VeRA.
  Live: the SST-2 budget study at R = 810 (bench/tables/budget_sst2_r810s.json), searched on a
  GPU before the spread existed and continued with it on a CPU, went from a front of four
  VeRAs of 2.4-3.0k params (0.10 decades, best dev 0.840) to eight points up to a 104k LoRA-FA
  (1.64 decades, best dev 0.863), for 53% more training steps (12,483 to 19,143).
  Tried and not kept: the rung's smallest point first in the spread (the front's small end
  whatever its signal, as NSGA-II's crowding distance keeps a front's ends). Replayed on both
  learning-curve tables (30 seeds, budget 16 R) it changed nothing; live (SST-2, R = 810, the
  initial design, 48 configurations) it took one of the top rung's 4 spread places (10 points)
  from the design's 2.7M LoRA, the only point of its decade, to send a 1,580-param VeRA to R
  beside the 1,592-param one already there: the front ended at a 19k LoRA (1.08 decades).
- Ties: an identical point (same signal, same params) never dominates; equal contributions go
  to the better signal, then the lower trial number (deterministic).

Signals are higher-is-better: ``dev_metric`` as recorded, ``dev_loss`` (dev cross-entropy) as
its negative (:func:`signal_of`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lorasearch.errors import LorasearchError

if TYPE_CHECKING:
    from lorasearch.training.trainer import EvalPoint

DEFAULT_ETA = 3
# Without --min-steps: R/27, R/9, R/3 and R. Measured by replaying strategies on the
# learning-curve table (bench/replay.py bench/tables/sst2.csv, 52 configurations, R = 243,
# 30 seeds, budget a quarter of the table x R), steps to reach random search's / TPE's final
# hypervolume as a fraction of their budget, with pauses and ranking by contribution: rungs from
# R/27 0.415 / 0.445, from R/9 0.505 / 0.695. (Without pauses, promoting the first arrivals,
# deep rungs starved the front: rungs from R/27 0.777 +- 0.160 final hypervolume against R/3's
# 0.886 at 34 configurations, which is why R/3 was the default before pauses.)
DEFAULT_RUNGS = 4
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
    ``min_steps`` (default ``max_steps // eta**3`` but at least ``MIN_RUNG_STEPS``, and at most
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


def _box(points: list[RungPoint], reference: tuple[float, float]) -> float:
    """The area ``points`` dominate in (signal up, log10 params down) up to ``reference``
    (lowest signal, largest log10 params): the search's hypervolume, on rung signals."""
    from optuna._hypervolume import compute_hypervolume

    if not points:
        return 0.0
    losses = np.array([(-p.signal, math.log10(max(p.params, 1))) for p in points])
    return float(compute_hypervolume(losses, np.array([-reference[0], reference[1]])))


def _by_contribution(layer: list[RungPoint], everyone: list[RungPoint]) -> list[RungPoint]:
    """The layer ordered for the front's hypervolume: greedily, the point that adds the most to
    the area the chosen ones cover (ties: better signal, then lower trial number). The
    reference is just below the rung's lowest signal and a decade above its largest size, as
    the search's own reference (chance, the base model) lies below and beyond every adapter."""
    low = min(p.signal for p in everyone)
    reference = (low - 1e-9 * max(1.0, abs(low)), math.log10(max(p.params for p in everyone)) + 1)
    order, rest = [], sorted(layer, key=lambda p: (-p.signal, p.number))
    while rest:
        base = _box(order, reference)
        best = max(rest, key=lambda p: (_box([*order, p], reference) - base, p.signal, -p.number))
        order.append(best)
        rest.remove(best)
    return order


def ranked(points: list[RungPoint], limit: int | None = None) -> list[RungPoint]:
    """The points in promotion order: layer by layer, each layer by hypervolume contribution;
    with ``limit``, only the first ``limit`` (layers past it are never sorted)."""
    full, limit = limit is None, len(points) if limit is None else limit
    order, remaining = [], list(points)
    while remaining and len(order) < limit:
        ids = {id(p) for p in _front(remaining)}
        layer = sorted((p for p in remaining if id(p) in ids), key=lambda p: p.number)
        remaining = [p for p in remaining if id(p) not in ids]
        cut = full or len(order) + len(layer) > limit  # only a cut layer needs its order
        order.extend(_by_contribution(layer, points) if cut else layer)
    return order[:limit]


def promotion_count(n: int, eta: int, *, top: bool = False, final: bool = False) -> int:
    """How many of a rung's ``n`` points go on: the top ``n // eta``, none while ``n < eta``
    (ASHA); at the ``top`` rung (the last below the full budget) ``ceil(n / eta)``, so the
    first trial to reach it goes on to the full budget; at the end of a search (``final``,
    ``promotion.finish``) ``ceil(n / eta)`` and at least ``min(n, eta)``, so a search ends
    with at least ``eta`` trials at the full budget when it started that many."""
    if eta < 2:
        raise LorasearchError(f"--eta must be >= 2, got {eta}")
    if final:
        return max(math.ceil(n / eta), min(n, eta))
    return math.ceil(n / eta) if top else n // eta


def promotions(
    points: list[RungPoint], eta: int, *, top: bool = False, final: bool = False
) -> list[RungPoint]:
    """The points a rung promotes: the first :func:`promotion_count` of :func:`ranked`; at the
    end of a search (``final``) also as many again spread over the params decades
    (:func:`spread`), those not already chosen. NaN signals (diverged trials) are never
    promoted, nor counted."""
    valid = [p for p in points if not math.isnan(p.signal)]
    count = promotion_count(len(valid), eta, top=top, final=final)
    chosen = ranked(valid, count)
    if final:
        chosen += [p for p in spread(valid, count) if p not in chosen]
    return chosen


def spread(points: list[RungPoint], count: int) -> list[RungPoint]:
    """``count`` of ``points`` taken round-robin over their params decades (``floor(log10)``):
    each decade's first by :func:`ranked` among its own, then each decade's second, and so on;
    inside a round, in :func:`ranked`'s order over all the points."""
    overall = {p.number: i for i, p in enumerate(ranked(points))}
    decades: dict[int, list[RungPoint]] = {}
    for p in points:
        decades.setdefault(int(math.log10(max(p.params, 1))), []).append(p)
    turn = {p.number: i for group in decades.values() for i, p in enumerate(ranked(group))}
    return sorted(points, key=lambda p: (turn[p.number], overall[p.number]))[:count]


def promotable(
    candidate: RungPoint, peers: list[RungPoint], eta: int, *, top: bool = False
) -> bool:
    """Whether ``candidate`` goes on past the rung where ``peers`` (other trials) recorded theirs:
    it is among the :func:`promotions` of them all (an identical point counts as it)."""
    others = [p for p in peers if p.number != candidate.number]
    chosen = promotions([*others, candidate], eta, top=top)
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

"""How much of dev a rung below the full budget scores: enough to rank trials, no more.

A search compares trials at its rungs by the dev mean cross-entropy; most trials stop at the
first rungs, where the full dev split can cost more than the training before it. So a rung
below the budget scores dev in a fixed seeded order (the same examples for every trial of a
seed, so trials compare on the same examples), a chunk at a time, and stops once the mean is
known well enough: at least ``RUNG_MIN_EXAMPLES`` scored and its standard error at most
``RUNG_SE_NATS``. The standard error is the sampling one, without the finite-population
correction: conservative when the subsample nears the whole split. A near-chance model
(typical at the first rung) gives nearly the same loss on every example and stops at the
minimum; a model that has learned spreads its losses and scores more, up to all of dev.

The numbers here are pure (no model): the trainer's ``evaluate_subsample`` runs the chunks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

# Below this many examples the spread itself is poorly estimated: at 128 the losses' standard
# deviation is known within about 6% (1 / sqrt(2n)), and a near-chance model's mean already has a
# standard error well under RUNG_SE_NATS. 256 was the first choice; in the live search
# (bench/fidelity_live.py, R = 300, dev 1,000) evaluation then took 21.5% of the wall time, most
# of it at the first rung, where 256 examples cost about three training steps (1.8 s on one core
# against 0.6 s a step) after only 11. 128 is two chunks of the default eval batch size.
RUNG_MIN_EXAMPLES = 128
# In the pilot table (bench/tables/sst2_pilot.csv, 16 configurations) the spread (std) of dev
# cross-entropy across configurations at the first three rungs (steps 5, 15, 45) was 0.09, 0.05
# and 0.11 nats. A standard error of 0.02 leaves 86% of the variance between configurations at
# the tightest rung signal (0.05^2 / (0.05^2 + 0.02^2)), 95% and more at the others. 0.01 was
# tried first: in a live search (bench/fidelity_live.py, dev 1,000) trials that had learned then
# scored all of dev at their first rung, 2-4x the time of the 11 training steps before it.
RUNG_SE_NATS = 0.02


class LossTally:
    """Running mean and variance of per-example losses (Welford's update, float64)."""

    def __init__(self, losses: Iterable[float] = ()):
        self.count, self.mean, self._squares = 0, 0.0, 0.0
        self.add(losses)

    def add(self, losses: Iterable[float]) -> None:
        for loss in losses:
            self.count += 1
            delta = loss - self.mean
            self.mean += delta / self.count
            self._squares += delta * (loss - self.mean)

    @property
    def variance(self) -> float:
        """The losses' sample variance; infinite below two."""
        if self.count < 2:
            return math.inf
        return max(self._squares, 0.0) / (self.count - 1)

    @property
    def standard_error(self) -> float:
        """The standard error of the mean (sample std / sqrt(count)); infinite below two."""
        return math.sqrt(self.variance / self.count) if self.count >= 2 else math.inf


def needs_more_examples(tally: LossTally) -> bool:
    """Whether a rung's subsample scores another chunk: fewer than ``RUNG_MIN_EXAMPLES`` so far,
    or the mean's standard error above ``RUNG_SE_NATS``."""
    return tally.count < RUNG_MIN_EXAMPLES or tally.standard_error > RUNG_SE_NATS


def chunks_ahead(tally: LossTally, chunk_size: int) -> int:
    """How many chunks a rung scores in one pass before it reads the rule again: up to
    ``RUNG_MIN_EXAMPLES``, then as many as the losses' spread so far says the standard error
    needs (``variance / RUNG_SE_NATS**2`` examples), at least one. The rule is still read after
    every chunk, in order (``evaluate_subsample`` replays it), so this decides only how many
    examples are scored together, never where the subsample stops: one pass sorts its examples
    by length, and a model that needed 800 examples cost 6.3 s chunk by chunk (random lengths,
    padded per half chunk) against 4.7 s for all 1,000 of dev in length order (SST-2, one
    core)."""
    target = RUNG_MIN_EXAMPLES
    if tally.count >= 2:
        target = max(target, math.ceil(tally.variance / RUNG_SE_NATS**2))
    return max(1, math.ceil((target - tally.count) / chunk_size))


def rung_chunk_size(eval_batch_size: int) -> int:
    """A rung scores chunks of half an eval batch (64 by default): the stopping rule is read
    after each, so a model that needs 300 examples scores 320, not 384 (a chunk is a random
    draw, so it can only stop between chunks: inside one the order is by length). The chunk
    is where the rule is read, not how examples are batched (``chunks_ahead``)."""
    return max(1, eval_batch_size // 2)


def rung_chunks(lengths: list[int], chunk_size: int, seed: int) -> list[list[int]]:
    """All indices in a seeded random order, cut into chunks of ``chunk_size``; each chunk is
    sorted by length (less padding; the order inside a chunk changes no score). Its own
    generator: the global RNG that training draws dropout from is left alone."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    return [
        sorted(order[start : start + chunk_size], key=lambda i: lengths[i])
        for start in range(0, len(order), chunk_size)
    ]

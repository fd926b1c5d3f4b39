"""Multi-fidelity, then refit: the front found on a cheap budget, retrained on a full one.

Each Pareto configuration of a study is trained again with more steps under several seeds
(AutoPEFT's protocol); the report gives mean ± std of the dev and test metric per configuration.
With learning-rate scales, each configuration is also refit at its searched rate times each
scale, and the scale with the best mean dev is marked picked: a search tunes its rate for its own
(short) budget, and the longer refit may want another. On SST-2 the default search's ≤ 0.1%
VeRA refit for 3 epochs (BENCHMARKS §15) scored mean dev 0.900 at its searched rate, 0.899 at
half of it (three seeds each; seed 0 alone had favoured half) and 0.806 at twice it: the rate
matters, and only dev over several seeds should move it.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import optuna
import torch

from lorasearch.adapters import build_adapter, get_variant
from lorasearch.errors import LorasearchError
from lorasearch.search import records
from lorasearch.search.objective import failure_reason, release_memory
from lorasearch.tracking.base import NoTracking, Tracking
from lorasearch.training.trainer import NonFiniteLoss, TrainResult
from lorasearch.training.trial import Trial, run_trial


@dataclass
class Refit:
    """One Pareto configuration retrained under several seeds; ``failed`` says which seeds did
    not train and why (a diverged loss, memory), so one such seed costs only itself."""

    number: int
    variant: str
    knobs: dict
    search_dev_metric: float
    trainable_params: int
    stored_params: int | None
    results: list[TrainResult] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "seed 2: non-finite loss (nan) at step 510"
    lr_scale: float = 1.0  # the searched learning rate times this (``knobs`` holds the product)
    picked: bool = True  # the configuration's scale with the best mean dev (see ``pick_scales``)
    trained_seeds: list[int] = field(default_factory=list)  # the seed of each of ``results``
    run_ids: dict[int, str | None] = field(default_factory=dict)  # seed -> its MLflow run

    def summary(self) -> dict:
        dev = [r.dev_metric for r in self.results]
        test = [r.test_metric for r in self.results]
        first = self.results[0] if self.results else None
        return {
            "number": self.number,
            "variant": self.variant,
            "params": self.knobs,
            "search_dev_metric": self.search_dev_metric,
            "seeds": len(self.results),
            "dev_mean": _mean(dev),
            "dev_std": _spread(dev),
            "test_mean": _mean(test),
            "test_std": _spread(test),
            "trainable_params": first.trainable_params if first else self.trainable_params,
            "stored_params": first.stored_params if first else self.stored_params,
            "failed": list(self.failed),
            "lr_scale": self.lr_scale,
            "picked": self.picked,
        }


def _mean(xs: list[float]) -> float | None:
    return statistics.mean(xs) if xs else None  # None: no seed trained


def _spread(xs: list[float]) -> float | None:
    return statistics.stdev(xs) if len(xs) > 1 else (0.0 if xs else None)


def refit_front(
    study: optuna.Study,
    seeds: int,
    steps: int | None,
    on_run: Callable[[Refit, int], None] | None = None,
    on_failed: Callable[[Refit, int, str], None] | None = None,
    lr_scales: Sequence[float] = (),
    tracker: Tracking | None = None,
) -> list[Refit]:
    """Retrain every Pareto trial of ``study`` with ``steps`` (default: the search's) × ``seeds``,
    at its searched learning rate and at that rate times each of ``lr_scales``;
    ``on_run(refit, seed)`` before each run, ``on_failed(refit, seed, why)`` after one
    that diverged or ran out of memory; ``tracker`` records each seed as it ends, and the
    study keeps the refit so far after each seed (``records.refit_record``: what
    ``lorasearch best`` chooses by). Every configuration is checked before any run trains."""
    if seeds < 1:
        raise LorasearchError(f"--seeds must be >= 1, got {seeds}")
    if steps is not None and steps < 1:
        raise LorasearchError(f"--steps must be >= 1, got {steps}")
    bad = [s for s in lr_scales if not (s > 0 and math.isfinite(s))]
    if bad:
        raise LorasearchError(f"--lr-scales must be positive numbers, got {bad[0]:g}")
    front = records.front(study)
    if not front:
        raise LorasearchError(f"study '{study.study_name}' has no finished trial to refit")
    fixed = records.StudyRecord.of(study).fixed
    train = refit_train(fixed, steps)
    scales = sorted({1.0, *lr_scales})
    refits = [
        refit
        for trial in sorted(front, key=lambda t: t.values[1])
        for refit in _rows(trial, fixed.train.steps, train.steps, scales)
    ]
    for refit in refits:  # a scaled rate out of range fails here, before hours of training
        try:
            build_adapter(refit.variant, **copy.deepcopy(refit.knobs))
        except LorasearchError as exc:
            raise LorasearchError(
                f"trial {refit.number} at lr × {refit.lr_scale:g}: {exc}"
            ) from None
    tracker = tracker or NoTracking()
    for i, refit in enumerate(refits):
        for seed in range(seeds):
            if on_run:
                on_run(refit, seed)
            result, why = _train_seed(refit, fixed, replace(train, seed=seed))
            refit.run_ids[seed] = tracker.log_refit(study, refit, seed, result, why)
            if why and on_failed:
                on_failed(refit, seed, why)
            finished = i == len(refits) - 1 and seed == seeds - 1
            records.write_refit(
                study, _record(pick_scales(refits[: i + 1]), steps, seeds, finished)
            )
    return pick_scales(refits)


def refit_train(fixed, steps: int | None):
    """The training settings of a refit to ``steps`` (None: the search's own budget, which keeps
    the search's evaluation cadence; a new budget gets the default one)."""
    return replace(fixed.train, steps=steps, eval_every=None) if steps else fixed.train


def _record(
    refits: list[Refit], steps: int | None, seeds: int, finished: bool
) -> records.RefitRecord:
    configs = tuple(
        records.RefitConfig(
            r.number,
            r.variant,
            r.knobs,
            r.lr_scale,
            r.picked,
            tuple(
                records.RefitSeed(seed, res.dev_metric, res.test_metric, r.run_ids.get(seed))
                for seed, res in zip(r.trained_seeds, r.results, strict=True)
            ),
            tuple(r.failed),
        )  # fmt: skip
        for r in refits
    )
    return records.RefitRecord(steps, seeds, finished, configs)


def _rows(trial, searched: int, steps: int, scales: list[float]) -> list[Refit]:
    """``trial``'s refits, one per rate scale, its step-counting knobs set for ``steps``."""
    knobs = get_variant(trial.variant).for_steps(trial.knobs, searched, steps)
    return [
        Refit(
            trial.number,
            trial.variant,
            _at_rate(trial.variant, knobs, scale),
            trial.values[0],
            int(trial.values[1]),
            trial.stored_params,
            lr_scale=scale,
        )  # fmt: skip
        for scale in scales
    ]


def _at_rate(variant: str, knobs: dict, scale: float) -> dict:
    if scale == 1.0:
        return knobs
    searched = knobs.get("lr", get_variant(variant).config_class().lr)  # lr fixed by the space
    return knobs | {"lr": searched * scale}


def _train_seed(refit: Refit, fixed, train) -> tuple[TrainResult | None, str | None]:
    """One seed of ``refit``: its result, kept on it, or why it did not train (a diverged loss,
    memory), kept in its ``failed``."""
    adapter = build_adapter(refit.variant, **copy.deepcopy(refit.knobs))
    try:
        result = run_trial(Trial(fixed.data, fixed.model, adapter, train))
    except (NonFiniteLoss, MemoryError, torch.OutOfMemoryError) as exc:
        why = failure_reason(exc)
        refit.failed.append(f"seed {train.seed}: {why}")
        release_memory()
        return None, why
    refit.results.append(result)
    refit.trained_seeds.append(train.seed)
    return result, None


def pick_scales(refits: list[Refit]) -> list[Refit]:
    """Mark, per configuration, the rate scale whose seeds reached the best mean dev (a tie goes
    to the searched rate, then the smaller scale); a scale with no trained seed is never picked."""
    by_trial: dict[int, list[Refit]] = {}
    for refit in refits:
        refit.picked = False
        by_trial.setdefault(refit.number, []).append(refit)
    for rows in by_trial.values():
        trained = [r for r in rows if r.results]
        if trained:
            max(trained, key=_scale_rank).picked = True
    return refits


def _scale_rank(refit: Refit) -> tuple:
    return (_mean([r.dev_metric for r in refit.results]), refit.lr_scale == 1.0, -refit.lr_scale)

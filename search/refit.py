"""Multi-fidelity, then refit: the front found on a cheap budget, retrained on a full one.

Each Pareto configuration of a study is trained again with more steps under several seeds
(AutoPEFT's protocol); the report gives mean ± std of the dev and test metric per configuration.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import optuna
import torch

from lorasearch.adapters import build_adapter, get_variant
from lorasearch.errors import LorasearchError
from lorasearch.search import records
from lorasearch.search.objective import failure_reason, release_memory
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
        }


def _mean(xs: list[float]) -> float | None:
    return statistics.mean(xs) if xs else None  # None: no seed trained


def _spread(xs: list[float]) -> float | None:
    return statistics.stdev(xs) if len(xs) > 1 else (0.0 if xs else None)


def refit_front(
    study: optuna.Study,
    seeds: int,
    steps: int | None,
    on_run: Callable[[int, str, int], None] | None = None,
    on_failed: Callable[[int, int, str], None] | None = None,
) -> list[Refit]:
    """Retrain every Pareto trial of ``study`` with ``steps`` (default: the search's) × ``seeds``;
    ``on_run(number, variant, seed)`` before each run, ``on_failed(number, seed, why)`` after one
    that diverged or ran out of memory."""
    if seeds < 1:
        raise LorasearchError(f"--seeds must be >= 1, got {seeds}")
    if steps is not None and steps < 1:
        raise LorasearchError(f"--steps must be >= 1, got {steps}")
    front = records.front(study)
    if not front:
        raise LorasearchError(f"study '{study.study_name}' has no finished trial to refit")
    fixed = records.StudyRecord.of(study).fixed
    # A new budget gets the default evaluation cadence; the search's budget keeps the search's.
    train = replace(fixed.train, steps=steps, eval_every=None) if steps else fixed.train
    refits = []
    for trial in sorted(front, key=lambda t: t.values[1]):
        variant = trial.variant
        knobs = get_variant(variant).for_steps(trial.knobs, fixed.train.steps, train.steps)
        refit = Refit(
            trial.number, variant, knobs, trial.values[0], int(trial.values[1]),
            trial.stored_params,
        )  # fmt: skip
        for seed in range(seeds):
            if on_run:
                on_run(trial.number, variant, seed)
            spec = Trial(
                fixed.data,
                fixed.model,
                build_adapter(variant, **copy.deepcopy(knobs)),
                replace(train, seed=seed),
            )
            try:
                refit.results.append(run_trial(spec))
            except (NonFiniteLoss, MemoryError, torch.OutOfMemoryError) as exc:
                why = failure_reason(exc)
                refit.failed.append(f"seed {seed}: {why}")
                release_memory()
                if on_failed:
                    on_failed(trial.number, seed, why)
        refits.append(refit)
    return refits

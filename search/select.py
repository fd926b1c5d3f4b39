"""Picking one configuration from a study's Pareto front for a parameter budget.

Two rules: ``best`` is the highest dev metric within the budget (fewer params break ties);
``knee`` is the front point farthest from the straight line joining the front's two ends in
(log10 params, metric) normalised to the unit square: where more parameters stop paying.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import optuna

from lorasearch.adapters import build_adapter
from lorasearch.errors import LorasearchError
from lorasearch.search import records
from lorasearch.search.records import StudyRecord, TrialRecord
from lorasearch.training.trainer import TrainResult
from lorasearch.training.trial import Trial, run_trial

RULES = ("best", "knee")


@dataclass
class Choice:
    """The chosen trial, the rule that chose it, and the reason in one sentence."""

    trial: TrialRecord
    rule: str
    why: str


def choose(study: optuna.Study, max_params: int | None = None, rule: str = "best") -> Choice:
    """The front's configuration for ``max_params`` under ``rule`` (see the module docstring)."""
    if rule not in RULES:
        raise LorasearchError(f"unknown --rule '{rule}'; use {' or '.join(RULES)}")
    if max_params is not None and max_params < 1:
        raise LorasearchError(f"--max-params must be >= 1, got {max_params}")
    front = sorted(records.front(study), key=lambda t: (t.values[1], -t.values[0]))
    if not front:
        raise LorasearchError(f"study '{study.study_name}' has no finished trial to choose from")
    metric = records.metric_name(study) or "metric"
    within = [t for t in front if max_params is None or t.values[1] <= max_params]
    if not within:
        smallest = front[0]
        raise LorasearchError(
            f"--max-params {max_params:,} is below the smallest configuration on the front "
            f"(trial {smallest.number}: {int(smallest.values[1]):,} trainable params)"
        )
    budget = f" within {max_params:,} params" if max_params is not None else ""
    knee = _knee(within) if rule == "knee" and len(within) >= 3 else None
    if knee is not None:
        chosen = knee
        why = (
            f"the knee of the {len(within)}-point front{budget}: beyond "
            f"{int(chosen.values[1]):,} params, each decade of parameters buys the least {metric}"
        )
    else:
        chosen = max(within, key=lambda t: (t.values[0], -t.values[1]))
        why = f"the highest dev {metric} among the {len(within)} front configuration(s){budget}"
        if rule == "knee":
            why += " (the front has no knee: no point lies above the line joining its ends)"
    return Choice(chosen, rule, why)


def _knee(front: list[TrialRecord]) -> TrialRecord | None:
    xs = [math.log10(max(t.values[1], 1)) for t in front]
    ys = [t.values[0] for t in front]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    points = [((x - min(xs)) / span_x, (y - min(ys)) / span_y) for x, y in zip(xs, ys, strict=True)]
    (x0, y0), (x1, y1) = points[0], points[-1]
    length = math.hypot(x1 - x0, y1 - y0) or 1.0

    def distance(p: tuple[float, float]) -> float:  # above the chord counts, below does not
        return ((x1 - x0) * (p[1] - y0) - (y1 - y0) * (p[0] - x0)) / length

    best = max(range(1, len(front) - 1), key=lambda i: distance(points[i]))
    return front[best] if distance(points[best]) > 0 else None


def retrain(study: optuna.Study, trial: TrialRecord, export_dir: Path) -> TrainResult:
    """Train ``trial``'s configuration again exactly as the search did, exporting it."""
    fixed = StudyRecord.of(study).fixed
    adapter = build_adapter(trial.variant, **copy.deepcopy(trial.knobs))
    spec = Trial(fixed.data, fixed.model, adapter, fixed.train)
    return run_trial(spec, export_dir=export_dir)

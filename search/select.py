"""Picking one configuration from a study's Pareto front for a parameter budget.

Two rules: ``best`` is the highest dev metric within the budget (fewer params break ties);
``knee`` is the front point farthest from the straight line joining the front's two ends in
(log10 params, metric) normalised to the unit square: where more parameters stop paying.
The metric is the search's dev, or, once ``lorasearch refit`` has retrained the front, each
configuration's mean dev over its refit seeds. The search ranks at a short budget on one seed,
and its ranks did not always hold over three seeds at the full budget (BENCHMARKS §15): on SST-2
(budget_sst2_r810s) LoRA-FA 104,450 led LoRA 13,058 in the search, 0.863 to 0.855, and trailed
it refit, 0.877 to 0.898; on AG News (budget_agnews_d810) LoRA 13,828 led VeRA 4,564, 0.872 to
0.869, and trailed it refit, 0.875 to 0.878. So a refit, where there is one, is the judge.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from pathlib import Path

import optuna

from lorasearch.adapters import build_adapter
from lorasearch.errors import LorasearchError
from lorasearch.search import records
from lorasearch.search.records import RefitConfig, RefitRecord, StudyRecord, TrialRecord
from lorasearch.search.refit import refit_train
from lorasearch.training.trainer import TrainResult
from lorasearch.training.trial import Trial, run_trial

RULES = ("best", "knee")
BY = ("auto", "search", "refit")


@dataclass
class Choice:
    """The chosen trial, the rule that chose it, and the reason in one sentence; ``by`` says
    whose dev metric chose (the search's, or its ``refit``: that trial's refit at the rate scale
    with the best mean dev)."""

    trial: TrialRecord
    rule: str
    why: str
    by: str = "search"
    refit: RefitConfig | None = None
    refit_steps: int | None = None  # the refit's budget (None: the search's)


def choose(
    study: optuna.Study, max_params: int | None = None, rule: str = "best", by: str = "auto"
) -> Choice:
    """The front's configuration for ``max_params`` under ``rule`` (see the module docstring),
    by the search's dev metric or by the study's last refit (``by`` "refit"; "auto": the refit
    when every front configuration within the budget has one, else the search)."""
    if rule not in RULES:
        raise LorasearchError(f"unknown --rule '{rule}'; use {' or '.join(RULES)}")
    if by not in BY:
        raise LorasearchError(f"unknown --by '{by}'; use {', '.join(BY)}")
    if max_params is not None and max_params < 1:
        raise LorasearchError(f"--max-params must be >= 1, got {max_params}")
    front = sorted(records.front(study), key=lambda t: (t.values[1], -t.values[0]))
    if not front:
        raise LorasearchError(f"study '{study.study_name}' has no finished trial to choose from")
    within = [t for t in front if max_params is None or t.values[1] <= max_params]
    if not within:
        smallest = front[0]
        raise LorasearchError(
            f"--max-params {max_params:,} is below the smallest configuration on the front "
            f"(trial {smallest.number}: {int(smallest.values[1]):,} trainable params)"
        )
    refit = _refits(study, within, by)
    if refit is not None:
        scored = {t.number: refit.picked(t.number) for t in within}
        within = [t for t in within if scored[t.number] is not None]
        if not within:
            raise LorasearchError(
                "no seed of the refit trained for any front configuration within the budget: "
                "choose with --by search"
            )
        score = {t.number: scored[t.number].dev_mean for t in within}
    else:
        score = {t.number: t.values[0] for t in within}
    metric = records.metric_name(study) or "metric"
    budget = f" within {max_params:,} params" if max_params is not None else ""
    knee = _knee(within, score) if rule == "knee" and len(within) >= 3 else None
    if knee is not None:
        chosen = knee
        why = (
            f"the knee of the {len(within)}-point front{budget}: beyond "
            f"{int(chosen.values[1]):,} params, each decade of parameters buys the least {metric}"
        )
    else:
        chosen = max(within, key=lambda t: (score[t.number], -t.values[1]))
        why = f"the highest dev {metric} among the {len(within)} front configuration(s){budget}"
        if rule == "knee":
            why += " (the front has no knee: no point lies above the line joining its ends)"
    if refit is None:
        return Choice(chosen, rule, why)
    config = refit.picked(chosen.number)
    steps = f"{refit.steps:,} steps" if refit.steps else "the search's budget"
    why += f", by mean dev over {len(config.seeds)} refit seed(s) at {steps}"
    return Choice(chosen, rule, why, "refit", config, refit.steps)


def _refits(study: optuna.Study, within: list[TrialRecord], by: str) -> RefitRecord | None:
    """The refit to choose by: None for the search's dev (``by`` search, or auto where the
    last refit does not cover every front configuration within the budget)."""
    if by == "search":
        return None
    record = records.refit_record(study)
    name = study.study_name
    if record is None:
        if by == "refit":
            raise LorasearchError(
                f"study '{name}' has not been refit: run `lorasearch refit --study {name}` first"
            )
        return None
    covered = {c.number for c in record.configs}
    missing = [t.number for t in within if t.number not in covered]
    if missing and by == "refit":
        listed = ", ".join(str(n) for n in missing)
        raise LorasearchError(
            f"front trial(s) {listed} within the budget have no refit (the front changed or the "
            f"refit stopped early): run `lorasearch refit --study {name}` again, or --by search"
        )
    return None if missing else record


def _knee(front: list[TrialRecord], score: dict[int, float]) -> TrialRecord | None:
    xs = [math.log10(max(t.values[1], 1)) for t in front]
    ys = [score[t.number] for t in front]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    points = [((x - min(xs)) / span_x, (y - min(ys)) / span_y) for x, y in zip(xs, ys, strict=True)]
    (x0, y0), (x1, y1) = points[0], points[-1]
    length = math.hypot(x1 - x0, y1 - y0) or 1.0

    def distance(p: tuple[float, float]) -> float:  # above the chord counts, below does not
        return ((x1 - x0) * (p[1] - y0) - (y1 - y0) * (p[0] - x0)) / length

    best = max(range(1, len(front) - 1), key=lambda i: distance(points[i]))
    return front[best] if distance(points[best]) > 0 else None


def retrain(study: optuna.Study, choice: Choice, export_dir: Path) -> TrainResult:
    """Train the chosen configuration again, exporting it: as the search did, or, chosen by a
    refit, as its refit seed with the best dev did (its budget, rate and seed)."""
    fixed = StudyRecord.of(study).fixed
    if choice.refit is None:
        variant, knobs, train = choice.trial.variant, choice.trial.knobs, fixed.train
    else:
        variant, knobs = choice.refit.variant, choice.refit.knobs
        train = replace(refit_train(fixed, choice.refit_steps), seed=choice.refit.best_seed.seed)
    adapter = build_adapter(variant, **copy.deepcopy(knobs))
    return run_trial(Trial(fixed.data, fixed.model, adapter, train), export_dir=export_dir)

"""A study as one JSON object (``search --json``, ``pareto --json``): every trial, the front,
the hypervolume and its history, and the study's last refit."""

from __future__ import annotations

import math
from typing import Any

import optuna

from lorasearch.search.pareto import hypervolume_history
from lorasearch.search.records import (
    StudyRecord,
    TrialRecord,
    front,
    refit_record,
    trial_records,
)


def study_report(study: optuna.Study) -> dict[str, Any]:
    """Every trial (old and new), the front and the hypervolume: the ``--json`` object."""
    record = StudyRecord.of(study)
    trials = trial_records(study)
    pareto = {t.number for t in front(study)}
    scored_on_front = record.version >= 2  # since then only a trial on the front scores test
    rows = [trial_row(t, t.number in pareto, scored_on_front) for t in trials]
    ended = [t for t in trials if t.finished]
    history = hypervolume_history(ended, record.chance, record.full_params)
    refit = refit_summary(study)  # the key only once refit: a study never refit reports as before
    return {
        "study": study.study_name,
        "metric_name": record.metric_name,
        "trials": rows,
        "pareto": sorted(pareto),
        "hypervolume": history[-1] if history else 0.0,
        "hypervolume_history": history,
        "reference_point": {
            "metric": record.chance,
            "log10_params": math.log10(record.full_params),
        },
        "steps_used": sum(r["steps_used"] for r in rows),
    } | ({"refit": refit} if refit is not None else {})


def refit_summary(study: optuna.Study) -> dict[str, Any] | None:
    """The study's last refit (None: never refit): its budget (``steps`` None: the search's),
    seeds asked, whether it ran to the end, and per (trial, rate scale) the means and spreads
    over the seeds that trained (``best`` ranks by the ``picked`` scale's ``dev_mean``)."""
    record = refit_record(study)
    if record is None:
        return None
    configs = [
        {
            "number": c.number,
            "variant": c.variant,
            "lr_scale": c.lr_scale,
            "picked": c.picked,
            "seeds": len(c.seeds),
            "dev_mean": c.dev_mean,
            "dev_std": c.spread("dev_metric"),
            "test_mean": c.test_mean,
            "test_std": c.spread("test_metric"),
            "failed": list(c.failed),
        }  # fmt: skip
        for c in record.configs
    ]
    return {"steps": record.steps, "seeds": record.seeds, "finished": record.finished,
            "configs": configs}  # fmt: skip


def trial_row(trial: TrialRecord, pareto: bool, test_on_front: bool = True) -> dict[str, Any]:
    """One trial of the report. ``test_on_front``: ``test_metric`` only on the front (a trial
    scores test only if it ends on the front; one dominated since keeps its score in the record,
    not here); a study from before that rule (record version < 2) shows every score it has.
    ``rung``: the rungs it reached (the last is the full budget), for a multi-fidelity trial
    only (the key is left out otherwise, so older studies report as they did), with
    ``paused_at`` (the step a trial paused at, to be continued if promoted) and ``continues``
    (the paused trial a promotion continued), null where they do not apply."""
    row = {
        "number": trial.number,
        "state": trial.state,
        "variant": trial.variant,
        "params": trial.knobs,
        "values": list(trial.values) if trial.values else None,
        "steps_used": trial.steps_used,
        "reason": trial.reason,
        "test_metric": trial.test_metric if pareto or not test_on_front else None,
        "pareto": pareto,
    }
    if trial.rung is not None:
        row["rung"] = trial.rung
        row["paused_at"] = trial.paused_at
        row["continues"] = trial.continues
    return row

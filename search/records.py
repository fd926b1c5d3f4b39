"""The study's stored record, typed: the only code that knows the Optuna user-attr keys.

A study keeps what any later command needs (the fixed trial settings, the space, the metric,
the hypervolume's reference point); each trial its configuration, result and timings. Readers
get frozen dataclasses (:class:`StudyRecord`, :class:`TrialRecord`); the study's writers are
the ``write_*`` functions below, a running trial's the ``record_*`` functions of
:mod:`lorasearch.search.recording` (which takes its keys from here).

Versions: a study created since the records were typed holds ``record_version``
(:data:`RECORD_VERSION`); one without it is version 0 (written by lorasearch up to 4981626)
and is read with the same keys. Version 2 (multi-fidelity) adds keys only: the search settings'
``fidelity``/``min_steps``/``eta``/``signal`` (absent: the study was searched without rungs),
and per trial ``rungs``, ``rung`` and ``dev_loss_curve``; it is a new version so that an older
lorasearch refuses to join a study whose rungs it would ignore. A retry's ``resumed_from`` (the
step it resumed at from a rung checkpoint) came later without a new version: a reader that
ignores it reads the trial as before. A later version that changes a key reads the old ones here.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lorasearch.errors import LorasearchError
from lorasearch.search.config import Fixed, SearchConfig
from lorasearch.spaces import SearchSpace

RECORD_VERSION = 2

# Study user attrs. `fixed` is written last (write_search, then write_new_study): a worker that
# sees it sees the rest.
VERSION, METRIC, CHANCE, FULL = "record_version", "metric_name", "chance", "full_params"
FIXED, SPACE, SEARCH, PARENT_ATTR = "fixed", "space", "search", "mlflow_parent_run_id"
# Trial user attrs.
RUN_ATTR, WORKER, VARIANT, KNOBS = "mlflow_run_id", "worker", "variant", "knobs"
PLANNED, OVER_BUDGET, PARTIAL, CURVE = "planned_params", "over_budget", "partial_curve", "curve"
PRUNE_REASON, FAIL_REASON, STEPS_USED = "prune_reason", "fail_reason", "steps_used"
# Version 2: the dev cross-entropy curve beside `curve` (whose shape old readers know), each
# rung's point {step: [signal, params]} for the trials still to reach it, and the rung reached.
LOSS_CURVE, RUNGS, RUNG = "dev_loss_curve", "rungs", "rung"
# The step a retried trial resumed at, from its failed predecessor's rung checkpoint (a key
# older readers ignore: the trial's record is the same otherwise).
RESUMED_FROM = "resumed_from"
# Asynchronous successive halving with pauses (search/promotion.py): the step a trial paused at
# (its checkpoint kept), the paused trial a promotion continues, and a promotion that found an
# earlier trial already continuing the same one (it ends at once).
PAUSED, CONTINUES, DUPLICATE = "paused_at", "continues", "duplicate_of"
# The study's last `lorasearch refit` (a study attr older readers ignore): see RefitRecord.
REFIT = "refit"
# TrainResult fields stored under their own names.
RESULT_FIELDS = (
    "dev_metric", "test_metric", "trainable_params", "adapter_params", "head_params",
    "stored_params", "steps_per_second", "train_time_s", "wall_time_s", "eval_time_s",
    "prepare_time_s", "peak_memory_mb", "device",
)  # fmt: skip

ABANDONED = "its worker stopped without ending it (killed, or its heartbeat lapsed)"
_RETRY = optuna.storages.RetryHeartbeatStaleTrialCallback


@dataclass(frozen=True)
class StudyRecord:
    """What a lorasearch study holds about itself."""

    name: str
    metric_name: str
    chance: float  # the metric at chance level: the hypervolume's reference
    full_params: int  # the base model's parameter count: the other reference
    fixed: Fixed
    space: SearchSpace
    settings: dict[str, Any]  # sampler, seed, early_stop, margin, max_params
    parent_run_id: str | None  # the study's MLflow run, once tracked
    version: int  # 0: written before versioning (lorasearch up to 4981626)

    @classmethod
    def of(cls, study: optuna.Study) -> StudyRecord:
        attrs = study.user_attrs
        check_lorasearch(study)
        version = attrs.get(VERSION, 0)
        if version > RECORD_VERSION:
            raise LorasearchError(
                f"study '{study.study_name}' was written by a newer lorasearch (record version "
                f"{version}; this one reads up to {RECORD_VERSION}): upgrade lorasearch"
            )
        return cls(
            name=study.study_name,
            metric_name=attrs[METRIC],
            chance=attrs[CHANCE],
            full_params=attrs[FULL],
            fixed=Fixed.from_json(attrs[FIXED]),
            space=SearchSpace.from_json(attrs[SPACE]),
            settings=json.loads(attrs.get(SEARCH, "{}")),
            parent_run_id=attrs.get(PARENT_ATTR),
            version=version,
        )

    def search_config(self, **options: Any) -> SearchConfig:
        """A :class:`SearchConfig` searching as this study does (a worker joining it);
        ``options`` add the count, storage, timeouts (and may override the settings). A study
        whose settings predate the rungs was searched without them, and goes on so."""
        settings = {"fidelity": False} | self.settings | options
        return SearchConfig(space=self.space, study_name=self.name, **settings)


@dataclass(frozen=True)
class TrialRecord:
    """One trial as lorasearch recorded it (fields None where the trial never got that far)."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    variant: str | None
    knobs: dict[str, Any]
    values: tuple[float, float] | None  # (dev metric, trainable params) of a COMPLETE trial
    dev_metric: float | None
    test_metric: float | None
    trainable_params: int | None
    adapter_params: int | None
    head_params: int | None
    stored_params: int | None
    planned_params: int | None  # counted before training
    steps_used: int
    curve: dict[int, float]  # step -> dev metric
    reason: str | None  # why it was stopped or failed, as `pareto` prints it (retries noted)
    cause: str | None  # the same without the retry note
    retry_of: int | None  # the trial this one retries (its worker died)
    run_id: str | None  # its MLflow run
    worker: str | None  # host:pid
    device: str | None
    steps_per_second: float | None
    peak_memory_mb: float | None
    train_time_s: float | None
    wall_time_s: float | None
    eval_time_s: float | None
    prepare_time_s: float | None
    dev_loss_curve: dict[int, float] = field(default_factory=dict)  # step -> dev cross-entropy
    rungs: dict[int, tuple[float, int]] = field(default_factory=dict)  # step -> (signal, params)
    rung: int | None = None  # rungs reached (1-based; the last is the full budget); None: no rungs
    resumed_from: int = 0  # a retry or continuation: the step it resumed at; 0: none
    continues: int | None = None  # the paused trial this one continues (a promotion)
    paused_at: int | None = None  # the step it paused at, to be continued if promoted later

    @property
    def finished(self) -> bool:
        """Ended one way or another: COMPLETE, PRUNED or FAIL."""
        return self.state in ("COMPLETE", "PRUNED", "FAIL")

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRecord:
        attrs = trial.user_attrs
        cause = attrs.get(PRUNE_REASON) or attrs.get(FAIL_REASON)
        if trial.state == TrialState.FAIL and not cause:
            cause = ABANDONED
        retry_of = _RETRY.retried_trial_number(trial)
        continues = attrs.get(CONTINUES)
        resumed = retry_of is not None or continues is not None
        resumed_from = attrs.get(RESUMED_FROM, 0) if resumed else 0
        reason = cause
        if resumed:
            notes = [f"retry of trial {retry_of}"] if retry_of is not None else []
            notes += [f"continues trial {continues}"] if continues is not None else []
            notes += [f"resumed at step {resumed_from}"] if resumed_from else []
            reason = "; ".join(notes + ([cause] if cause else []))
        return cls(
            number=trial.number,
            state=trial.state.name,
            variant=attrs.get(VARIANT),
            knobs=attrs.get(KNOBS, {}),
            values=tuple(trial.values) if trial.values else None,
            planned_params=attrs.get(PLANNED),
            steps_used=attrs.get(STEPS_USED, 0),
            curve={int(step): value for step, value in attrs.get(CURVE, {}).items()},
            reason=reason,
            cause=cause,
            retry_of=retry_of,
            run_id=attrs.get(RUN_ATTR),
            worker=attrs.get(WORKER),
            **{name: attrs.get(name) for name in RESULT_FIELDS},
            dev_loss_curve={int(step): v for step, v in attrs.get(LOSS_CURVE, {}).items()},
            rungs={int(step): (v[0], int(v[1])) for step, v in attrs.get(RUNGS, {}).items()},
            rung=attrs.get(RUNG),
            resumed_from=resumed_from,
            continues=continues,
            paused_at=attrs.get(PAUSED),
        )


@dataclass(frozen=True)
class RefitSeed:
    """One seed of a refit that trained: its numbers and its MLflow run (None: untracked)."""

    seed: int
    dev_metric: float
    test_metric: float
    run_id: str | None = None


@dataclass(frozen=True)
class RefitConfig:
    """One front configuration refit at one learning-rate scale (``knobs`` as it trained)."""

    number: int
    variant: str
    knobs: dict[str, Any]
    lr_scale: float
    picked: bool  # the trial's scale with the best mean dev
    seeds: tuple[RefitSeed, ...]
    failed: tuple[str, ...] = ()  # "seed 2: non-finite loss (nan) at step 510"

    @property
    def dev_mean(self) -> float | None:
        return statistics.mean(s.dev_metric for s in self.seeds) if self.seeds else None

    @property
    def test_mean(self) -> float | None:
        return statistics.mean(s.test_metric for s in self.seeds) if self.seeds else None

    def spread(self, name: str) -> float | None:
        """The sample standard deviation of ``name`` ("dev_metric", "test_metric") over the
        seeds; 0.0 for one seed, None for none."""
        values = [getattr(s, name) for s in self.seeds]
        return statistics.stdev(values) if len(values) > 1 else (0.0 if values else None)

    @property
    def best_seed(self) -> RefitSeed:
        """The seed with the best dev (the lower seed on a tie): the one an export retrains."""
        return max(self.seeds, key=lambda s: (s.dev_metric, -s.seed))


@dataclass(frozen=True)
class RefitRecord:
    """The study's last ``lorasearch refit``, kept as it runs (``finished`` once every
    configuration's seeds have run), so that ``best`` can choose by it. ``steps`` None: the
    search's own budget."""

    steps: int | None
    seeds: int
    finished: bool
    configs: tuple[RefitConfig, ...]

    def picked(self, number: int) -> RefitConfig | None:
        """Trial ``number``'s picked scale, if it was refit and a seed of it trained."""
        rows = [c for c in self.configs if c.number == number and c.picked and c.seeds]
        return rows[0] if rows else None


def write_refit(study: optuna.Study, record: RefitRecord) -> None:
    study.set_user_attr(REFIT, asdict(record))


def refit_record(study: optuna.Study) -> RefitRecord | None:
    """The study's last refit, or None when it was never refit."""
    raw = study.user_attrs.get(REFIT)
    if raw is None:
        return None
    configs = tuple(
        RefitConfig(
            **(
                c
                | {"seeds": tuple(RefitSeed(**s) for s in c["seeds"]), "failed": tuple(c["failed"])}
            )
        )  # fmt: skip
        for c in raw["configs"]
    )
    return RefitRecord(raw["steps"], raw["seeds"], raw["finished"], configs)


def trial_records(study: optuna.Study, states=None) -> list[TrialRecord]:
    """The study's trials (those in ``states``, else all), in number order."""
    return [TrialRecord.of(t) for t in study.get_trials(deepcopy=False, states=states)]


def front(study: optuna.Study) -> list[TrialRecord]:
    """The Pareto front of COMPLETE trials (Optuna's ``best_trials``); [] when none is."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    return [TrialRecord.of(t) for t in study.best_trials]


# --- the study ------------------------------------------------------------------------------------


def is_lorasearch(study: optuna.Study) -> bool:
    """Whether the study holds a complete lorasearch record (its last key is written)."""
    return FIXED in study.user_attrs


def check_lorasearch(study: optuna.Study) -> None:
    if not is_lorasearch(study):
        raise LorasearchError(f"study '{study.study_name}' was not created by lorasearch")


def metric_name(study: optuna.Study) -> str | None:
    return study.user_attrs.get(METRIC)


def parent_run_id(study: optuna.Study) -> str | None:
    return study.user_attrs.get(PARENT_ATTR)


def set_parent_run_id(study: optuna.Study, run_id: str) -> None:
    study.set_user_attr(PARENT_ATTR, run_id)


def write_new_study(
    study: optuna.Study, fixed: Fixed, metric: str, chance: float, full_params: int
) -> None:
    """A new study's record, at the current version."""
    # The objectives by name, for Optuna's plots and optuna-dashboard (which else shows "0"/"1");
    # every study lorasearch has created holds them (a resumed or joined one already does).
    study.set_metric_names([metric, "trainable_params"])
    study.set_user_attr(VERSION, RECORD_VERSION)
    study.set_user_attr(METRIC, metric)
    study.set_user_attr(CHANCE, chance)
    study.set_user_attr(FULL, full_params)
    study.set_user_attr(FIXED, fixed.to_json())  # last: a worker seeing it sees the rest


def write_search(study: optuna.Study, space: SearchSpace, settings: dict[str, Any]) -> None:
    """How the study is searched now (each run; a worker joining it reads these)."""
    study.set_user_attr(SPACE, space.to_json())
    study.set_user_attr(SEARCH, json.dumps(settings))

"""One multi-objective Optuna study over variant × hyperparameters.

Directions: maximise the dev metric, minimise trainable parameters. Each trial's parameter count
is computed before training, so a ``max_params`` budget rejects a configuration without training
it and early stopping can compare costs. Everything a later command needs (the fixed trial
settings, the metric, the reference point) is stored on the study, so ``pareto`` and ``refit``
work from the storage alone, from any machine.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import json
import math
import os
import socket
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lorasearch.adapters import build_adapter
from lorasearch.errors import LorasearchError, mask_url
from lorasearch.search.early_stop import Finished, stop_reason
from lorasearch.search.pareto import hypervolume, hypervolume_history
from lorasearch.spaces import SearchSpace
from lorasearch.tracking.plots import Point, draw_pareto
from lorasearch.tracking.runs import RUN_ATTR, Tracker, tracking_uri
from lorasearch.training.data import tokenize_task
from lorasearch.training.metrics import chance_level
from lorasearch.training.trainer import TrainConfig, TrainResult
from lorasearch.training.trial import (
    DataConfig,
    ModelConfig,
    Trial,
    load_data,
    load_inputs,
    planned_counts,
    run_trial,
)

DEFAULT_STORAGE = "sqlite:///lorasearch.db"
SAMPLERS = ("tpe", "nsga2", "random", "gp")


@dataclass
class SearchConfig:
    """How to search: budget, storage, sampler, early stopping and the space."""

    trials: int
    space: SearchSpace
    timeout_s: float | None = None
    storage: str | None = None
    study_name: str | None = None
    sampler: str = "tpe"
    seed: int = 0
    early_stop: bool = True
    margin: float = 0.01
    max_params: int | None = None
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    tracking: bool = True
    total: bool = False  # trials = the study's target of ended trials, not how many to add
    heartbeat_s: float = 30.0  # a silent worker's trial is failed after 2 heartbeats (and retried)

    def __post_init__(self) -> None:
        if self.heartbeat_s <= 0:
            raise LorasearchError(f"--heartbeat must be > 0 seconds, got {self.heartbeat_s}")
        if self.tracking:
            tracking_uri(self.tracking_uri)  # malformed: the user's error, before anything runs
        if self.trials < 1:
            raise LorasearchError(f"--trials must be >= 1, got {self.trials}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise LorasearchError(f"--timeout must be > 0 seconds, got {self.timeout_s}")
        if self.sampler not in SAMPLERS:
            raise LorasearchError(f"unknown sampler '{self.sampler}'; use {', '.join(SAMPLERS)}")
        if self.max_params is not None and self.max_params < 1:
            raise LorasearchError(f"--max-params must be >= 1, got {self.max_params}")
        if not 0 <= self.margin < 1:
            raise LorasearchError(f"--early-stop-margin must be in [0, 1), got {self.margin}")


@dataclass
class Fixed:
    """The part of every trial the search does not vary."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_json(self) -> str:
        return json.dumps(
            {"data": asdict(self.data), "model": asdict(self.model), "train": asdict(self.train)}
        )

    @classmethod
    def from_json(cls, text: str) -> Fixed:
        raw = json.loads(text)
        model = raw["model"] | {
            "targets": tuple(raw["model"]["targets"]) if raw["model"]["targets"] else None
        }
        return cls(DataConfig(**raw["data"]), ModelConfig(**model), TrainConfig(**raw["train"]))


class SearchProgress:
    """Hooks a front end implements to show progress (all optional)."""

    def search_started(self, study: optuna.Study, storage: str, space: SearchSpace) -> None: ...

    def trial_started(self, number: int, variant: str, knobs: dict) -> None: ...

    def trial_step(self, step: int, loss: float, dev: float | None = None) -> None: ...

    def trial_ended(self, trial: FrozenTrial, hypervolume: float, best: float | None) -> None: ...

    def warning(self, message: str) -> None:
        print(f"lorasearch: warning: {message}", file=sys.stderr)


# --- storage --------------------------------------------------------------------------------------


def storage_url(storage: str | None) -> str:
    return storage or DEFAULT_STORAGE


# Optuna 4.9 renamed the stale-trial retry; older releases (>= 4.0) have the first name only.
if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):
    _RETRY = optuna.storages.RetryHeartbeatStaleTrialCallback
    _RETRY_ARG = "heartbeat_stale_trial_callback"
else:  # pragma: no cover - older Optuna
    _RETRY = optuna.storages.RetryFailedTrialCallback
    _RETRY_ARG = "failed_trial_callback"


def retried_trial_number(trial: FrozenTrial) -> int | None:
    """The number of the trial this one retries (after its worker died), else None."""
    return _RETRY.retried_trial_number(trial)


def open_storage(url: str, heartbeat_s: float | None = None) -> optuna.storages.BaseStorage:
    """Optuna's relational storage; with ``heartbeat_s``, a trial whose worker stops beating for
    two intervals is failed by the next worker, and its configuration retried once."""
    if "://" not in url:
        raise LorasearchError(
            f"malformed --storage '{mask_url(url)}' (expected e.g. sqlite:///file.db)"
        )
    beat = {}
    if heartbeat_s is not None:
        beat = {
            "heartbeat_interval": max(1, round(heartbeat_s)),
            "grace_period": max(2, round(2 * heartbeat_s)),
            _RETRY_ARG: _RETRY(max_retry=1),
        }
    for attempt in range(6):  # two workers creating the tables at once: the loser retries
        try:
            return optuna.storages.RDBStorage(url, **beat)
        except Exception as exc:  # sqlalchemy raises many types; the URL is what one can fix
            if attempt < 5 and _creation_race(exc):
                time.sleep(0.5 + attempt)
                continue
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LorasearchError(
                f"cannot open storage {mask_url(url)}: {mask_url(first)}"
            ) from None
    raise AssertionError("unreachable")


def _creation_race(exc: Exception) -> bool:
    """Another worker is creating the same tables right now (the only error worth a retry)."""
    text = str(exc).lower()
    return any(
        marker in text
        for marker in ("already exists", "duplicate", "uniqueviolation", "table schema")
    )


def default_study_name(fixed: Fixed) -> str:
    base = fixed.data.task or Path(fixed.data.data or "custom").stem
    model = Path(fixed.model.model).name if fixed.model.model else "minilm"
    return f"{base}-{model}"


def load_study(name: str, storage: str | None) -> optuna.Study:
    """An existing study (for ``pareto``, ``refit``, ``best``); never creates a storage."""
    url = storage_url(storage)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).is_file():
        raise LorasearchError(f"no study '{name}': no storage file {url[len('sqlite:///') :]}")
    backend = open_storage(url)
    names = [s.study_name for s in optuna.get_all_study_summaries(backend)]
    if name not in names:
        known = ", ".join(names) or "none"
        raise LorasearchError(
            f"no study '{name}' in {mask_url(storage_url(storage))} (studies: {known})"
        )
    study = optuna.load_study(study_name=name, storage=backend)
    if "fixed" not in study.user_attrs:
        raise LorasearchError(f"study '{name}' was not created by lorasearch")
    return study


def _sampler(config: SearchConfig, offset: int):
    seed = config.seed + offset  # a resumed study must not replay the same draws
    constraints = _constraints if config.max_params is not None else None
    if config.sampler == "tpe":
        return optuna.samplers.TPESampler(
            multivariate=True, group=True, seed=seed, constraints_func=constraints,
            n_startup_trials=min(10, max(2, config.trials // 3)),
        )  # fmt: skip
    if config.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=seed, constraints_func=constraints, population_size=8
        )
    if config.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, constraints_func=constraints)
    return optuna.samplers.RandomSampler(seed=seed)


def _constraints(trial: FrozenTrial) -> list[float]:
    return [float(trial.user_attrs.get("over_budget", 0))]


# --- the search -----------------------------------------------------------------------------------


def run_search(
    fixed: Fixed, config: SearchConfig, progress: SearchProgress | None = None
) -> optuna.Study:
    """Add ``config.trials`` trials to the study (created or resumed) and return it."""
    config.space.validate(fixed.train.steps)
    task = load_data(fixed.data)  # bad data fails here, before any study is written
    _, loaded = load_inputs(fixed.data, fixed.model)  # and a bad model (both cached for trials)
    tokenize_task(task, loaded.tokenizer, fixed.train.max_length)  # cached too
    del loaded
    if config.max_params is not None:
        _check_budget(fixed, config)
    name = config.study_name or default_study_name(fixed)
    backend = open_storage(storage_url(config.storage), config.heartbeat_s)
    study = optuna.create_study(
        study_name=name,
        storage=backend,
        directions=["maximize", "minimize"],
        load_if_exists=True,
    )
    _check_or_record(study, fixed, task, config)
    study.sampler = _sampler(config, len(study.trials))
    progress = progress or SearchProgress()
    progress.search_started(study, mask_url(storage_url(config.storage)), config.space)
    tracker = Tracker(config.tracking_uri, warn=progress.warning) if config.tracking else None
    if tracker:
        tracker.start_study(study, *_study_record(study, fixed, config))
    chance = study.user_attrs["chance"]
    full = study.user_attrs["full_params"]

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        done = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        best = max((t.values[0] for t in done if t.state == TrialState.COMPLETE), default=None)
        volume = hypervolume(done, chance, full)
        if tracker:
            tracker.finish_trial(trial)
            _update_tracking(tracker, study, done, volume)
        progress.trial_ended(trial, volume, best)

    objective = _objective(study, fixed, config, progress, tracker)
    with _gc_frozen():
        try:
            if config.total:
                _optimize_to_total(study, objective, config, after_trial, tracker)
            else:
                study.optimize(
                    objective,
                    n_trials=config.trials,
                    timeout=config.timeout_s,
                    catch=(Exception,),
                    callbacks=[after_trial],
                    gc_after_trial=True,
                )
        except KeyboardInterrupt:  # Optuna has marked the running trial FAIL: close its run too
            if tracker:
                tracker.close_abandoned(study)
                tracker.end_study(interrupted=True)
            raise
    if tracker:
        tracker.close_abandoned(study)
        tracker.end_study()
    return study


@contextlib.contextmanager
def _gc_frozen():
    """Freeze what is loaded once (libraries, data, tokens, the base model) out of the garbage
    collector's sight for the trials: Optuna collects after each trial (``gc_after_trial``, which
    frees the trial's model copy), and scanning SST-2's tokens and the libraries took 0.4 s each
    time; frozen, a collection sees only the trial's own objects. A caller that froze first keeps
    its own arrangement."""
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _check_budget(fixed: Fixed, config: SearchConfig) -> None:
    """A budget no configuration of the space fits is the user's error, said before any trial."""
    sizes = {}
    for variant in config.space.variants:
        knobs = config.space.smallest(variant, fixed.train.steps)
        spec = Trial(fixed.data, fixed.model, build_adapter(variant, **knobs), fixed.train)
        sizes[variant] = planned_counts(spec).trainable
    variant = min(sizes, key=sizes.get)
    if sizes[variant] > config.max_params:
        raise LorasearchError(
            f"--max-params {config.max_params:,} is below the smallest configuration in the "
            f"space ({variant} at its lowest knobs: {sizes[variant]:,} trainable params)"
        )


ENDED = (TrialState.COMPLETE, TrialState.PRUNED)


def _optimize_to_total(study, objective, config: SearchConfig, after_trial, tracker) -> None:
    """Run trials until the study holds ``config.trials`` ended (COMPLETE or PRUNED) trials.

    Re-running the same command after a crash completes the count; several workers with the same
    target share it. Trials still RUNNING elsewhere count as in progress until they end or their
    worker's heartbeat lapses (then they are failed, retried once, and no longer count).
    """
    started, failed = time.monotonic(), []

    def counted(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state == TrialState.FAIL:
            failed.append(trial.number)
        after_trial(study, trial)

    while True:
        optuna.storages.fail_stale_trials(study)
        if tracker:
            tracker.close_abandoned(study)
        trials = study.get_trials(deepcopy=False)
        ended = sum(t.state in ENDED for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if ended >= config.trials:
            return
        if config.timeout_s is not None and time.monotonic() - started > config.timeout_s:
            return
        if len(failed) > max(3, config.trials):  # a broken setup must not loop forever
            raise LorasearchError(
                f"{len(failed)} trials failed in this run; stopping (see `lorasearch pareto`)"
            )
        if ended + running >= config.trials:  # the rest is running elsewhere: wait for it
            time.sleep(min(2.0, config.heartbeat_s))
            continue
        study.optimize(
            objective, n_trials=1, catch=(Exception,), callbacks=[counted], gc_after_trial=True
        )


def _study_record(study: optuna.Study, fixed: Fixed, config: SearchConfig):
    """The parent run's params (fixed for the study's life) and tags (may change on resume)."""
    params = {
        "study": study.study_name,
        "task": fixed.data.task or "",
        "data": fixed.data.data or "",
        "metric": study.user_attrs["metric_name"],
        "model": fixed.model.model or "all-MiniLM-L6-v2 (bundled)",
        "targets": ",".join(fixed.model.targets) if fixed.model.targets else "detected",
        "storage": mask_url(storage_url(config.storage)),
    }
    tags = {
        "space": json.dumps(config.space.describe()),
        "variants": ",".join(config.space.describe()),
        "sampler": config.sampler,
        "seed": str(config.seed),
        "early_stop": f"margin {config.margin}" if config.early_stop else "off",
        "max_params": str(config.max_params or ""),
        "train": json.dumps(asdict(fixed.train)),
    }
    return params, tags


def _update_tracking(tracker: Tracker, study: optuna.Study, done, volume: float) -> None:
    front = {t.number for t in _front(study)}
    runs = {t.number: t.user_attrs[RUN_ATTR] for t in done if RUN_ATTR in t.user_attrs}
    points = [
        Point(
            t.number,
            t.user_attrs.get("variant", "?"),
            int(t.values[1]),
            t.values[0],
            t.number in front,
            ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in t.user_attrs.get("knobs", {}).items()
            ),
        )  # fmt: skip
        for t in done
        if t.state == TrialState.COMPLETE
    ]
    points += [  # stopped early: drawn at the best dev value they reached
        Point(
            t.number,
            t.user_attrs.get("variant", "?"),
            int(t.user_attrs["trainable_params"]),
            t.user_attrs["dev_metric"],
            False,
            stopped=True,
        )  # fmt: skip
        for t in done
        if t.state == TrialState.PRUNED and "dev_metric" in t.user_attrs
    ]
    metric = study.user_attrs["metric_name"]
    title = (
        f"study {study.study_name}: dev {metric} vs trainable params ({len(points)} trained trials)"
    )
    tracker.update_study(
        len(done),
        volume,
        {n: runs[n] for n in front if n in runs},
        runs,
        lambda folder: draw_pareto(points, metric, title, folder),
    )


def _check_or_record(study: optuna.Study, fixed: Fixed, task, config: SearchConfig) -> None:
    """A new study records what it searches; a resumed one must be searching the same thing."""
    attrs = study.user_attrs
    if "fixed" in attrs:
        old = Fixed.from_json(attrs["fixed"])
        if (old.data, old.model) != (fixed.data, fixed.model):
            raise LorasearchError(
                f"study '{study.study_name}' searches another task or model; "
                "use the same --task/--data/--model options, or another --study"
            )
    else:
        study.set_metric_names([task.spec.metric, "trainable_params"])
        study.set_user_attr("metric_name", task.spec.metric)
        study.set_user_attr(
            "chance", chance_level(task.spec.metric, task.dev.labels, task.num_labels)
        )
        _, loaded = load_inputs(fixed.data, fixed.model)
        study.set_user_attr("full_params", sum(p.numel() for p in loaded.model.parameters()))
        study.set_user_attr("fixed", fixed.to_json())  # last: a worker seeing it sees the rest
    study.set_user_attr("space", config.space.to_json())
    study.set_user_attr(
        "search",
        json.dumps(
            {
                "sampler": config.sampler, "seed": config.seed, "early_stop": config.early_stop,
                "margin": config.margin, "max_params": config.max_params,
            }
        ),
    )  # fmt: skip


def _objective(
    study: optuna.Study,
    fixed: Fixed,
    config: SearchConfig,
    progress: SearchProgress,
    tracker: Tracker | None,
):
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        trial.set_user_attr("steps_used", 0)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        run_id = tracker.start_trial(trial, study.study_name) if tracker else None
        try:
            variant, knobs = config.space.suggest(trial, fixed.train.steps)
            trial.set_user_attr("variant", variant)
            trial.set_user_attr("knobs", knobs)
            progress.trial_started(trial.number, variant, knobs)
            if tracker:
                tracker.trial_config(run_id, variant, knobs, asdict(fixed.train))
            spec = Trial(
                fixed.data, fixed.model, build_adapter(variant, **knobs), copy.copy(fixed.train)
            )
            planned = planned_counts(spec).trainable
            trial.set_user_attr("planned_params", planned)
            trial.set_user_attr(
                "over_budget", planned - config.max_params if config.max_params else 0
            )
            if config.max_params is not None and planned > config.max_params:
                _prune(
                    trial,
                    f"over budget: {planned:,} trainable params > --max-params {config.max_params:,}",
                )
            stopper = (
                _early_stopper(study, trial, planned, config, len(load_data(fixed.data).dev))
                if config.early_stop
                else None
            )

            def on_eval(step: int, metric: float) -> str | None:
                if tracker:
                    tracker.evaluation(run_id, step, metric)
                return stopper(step, metric) if stopper else None

            with tempfile.TemporaryDirectory(prefix="lorasearch-") as folder:
                keep = tracker is not None and run_id is not None and tracker.active
                result = run_trial(
                    spec,
                    on_eval=on_eval,
                    on_step=tracker.step if tracker else None,
                    progress=progress.trial_step,
                    export_dir=Path(folder) if keep else None,
                )
                if keep and not result.stopped_early:  # `best` exports this very adapter
                    tracker.log_adapter(run_id, Path(folder))
        except optuna.TrialPruned:
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted (Ctrl-C)")
            raise
        except Exception as exc:
            trial.set_user_attr("fail_reason", _reason(exc))
            _release_memory()
            raise
        _record(trial, result)
        if result.stopped_early:
            _prune(trial, result.stopped_early)
        return result.dev_metric, float(result.trainable_params)

    return objective


def _early_stopper(
    study: optuna.Study, trial: optuna.Trial, params: int, config: SearchConfig, dev_size: int
):
    def on_eval(step: int, metric: float) -> str | None:
        trial.set_user_attr("partial_curve", {str(step): metric})  # last point, for workers
        finished = finished_trials(study)
        return stop_reason(step, metric, params, finished, config.margin, dev_size)

    return on_eval


def finished_trials(study: optuna.Study) -> list[Finished]:
    """COMPLETE trials as the early-stopping rule sees them."""
    finished = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        curve = {int(k): v for k, v in t.user_attrs.get("curve", {}).items()}
        finished.append(Finished(t.number, int(t.values[1]), curve, t.values[0]))
    return finished


def _record(trial: optuna.Trial, result: TrainResult) -> None:
    trial.set_user_attr("curve", {str(p.step): p.dev_metric for p in result.curve})
    trial.set_user_attr("steps_used", result.steps + result.preliminary_steps)
    trial.set_user_attr("dev_metric", result.dev_metric)
    trial.set_user_attr("test_metric", result.test_metric)
    trial.set_user_attr("trainable_params", result.trainable_params)
    trial.set_user_attr("adapter_params", result.adapter_params)
    trial.set_user_attr("head_params", result.head_params)
    trial.set_user_attr("stored_params", result.stored_params)
    trial.set_user_attr("steps_per_second", result.steps_per_second)
    trial.set_user_attr("train_time_s", result.train_time_s)  # the training steps alone
    trial.set_user_attr("wall_time_s", result.wall_time_s)  # + injection, evaluations, test
    trial.set_user_attr("eval_time_s", result.eval_time_s)
    trial.set_user_attr("prepare_time_s", result.prepare_time_s)
    trial.set_user_attr("peak_memory_mb", result.peak_memory_mb)
    trial.set_user_attr("device", result.device)


def _prune(trial: optuna.Trial, reason: str) -> None:
    trial.set_user_attr("prune_reason", reason)
    raise optuna.TrialPruned(reason)


def _reason(exc: Exception) -> str:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return "out of memory: " + str(exc).splitlines()[0]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, LorasearchError) else text


def _release_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- reporting ------------------------------------------------------------------------------------


def study_report(study: optuna.Study) -> dict[str, Any]:
    """Every trial (old and new), the front and the hypervolume: the ``--json`` object."""
    trials = study.get_trials(deepcopy=False)
    chance, full = study.user_attrs["chance"], study.user_attrs["full_params"]
    front = {t.number for t in _front(study)}
    rows = []
    for t in trials:
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "variant": t.user_attrs.get("variant"),
                "params": t.user_attrs.get("knobs", {}),
                "values": list(t.values) if t.values else None,
                "steps_used": t.user_attrs.get("steps_used", 0),
                "reason": _trial_note(t),
                "test_metric": t.user_attrs.get("test_metric"),
                "pareto": t.number in front,
            }
        )
    history = hypervolume_history([t for t in trials if t.state.is_finished()], chance, full)
    return {
        "study": study.study_name,
        "metric_name": study.user_attrs.get("metric_name"),
        "trials": rows,
        "pareto": sorted(front),
        "hypervolume": history[-1] if history else 0.0,
        "hypervolume_history": history,
        "reference_point": {"metric": chance, "log10_params": math.log10(full)},
        "steps_used": sum(r["steps_used"] for r in rows),
    }


def _trial_note(t: FrozenTrial) -> str | None:
    reason = t.user_attrs.get("prune_reason") or t.user_attrs.get("fail_reason")
    if t.state == TrialState.FAIL and not reason:
        reason = "its worker stopped without ending it (killed, or its heartbeat lapsed)"
    retried = retried_trial_number(t)
    if retried is not None:
        reason = f"retry of trial {retried}" + (f"; {reason}" if reason else "")
    return reason


def _front(study: optuna.Study) -> list[FrozenTrial]:
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return []
    return study.best_trials

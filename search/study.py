"""One multi-objective Optuna study over variant × hyperparameters: the run loop.

Directions: maximise the dev metric, minimise trainable parameters. Everything a later command
needs (the fixed trial settings, the metric, the reference point) is stored on the study
(:mod:`records`), so ``pareto`` and ``refit`` work from the storage alone, from any machine.
The trial itself is :mod:`objective`; storage, samplers and the report have their own modules.
"""

from __future__ import annotations

import contextlib
import gc
import json
import time
from dataclasses import asdict

import optuna
from optuna.trial import FrozenTrial, TrialState

from lorasearch.errors import LorasearchError, mask_url
from lorasearch.search import design, promotion, records
from lorasearch.search.config import FIDELITY_SETTINGS, Fixed, SearchConfig
from lorasearch.search.objective import check_budget, make_objective, planned_trainable
from lorasearch.search.pareto import hypervolume
from lorasearch.search.progress import SearchProgress
from lorasearch.search.samplers import make_sampler
from lorasearch.search.storage import default_study_name, open_storage, storage_url
from lorasearch.tracking.base import NoTracking, Tracking
from lorasearch.tracking.plots import draw_pareto, study_points
from lorasearch.training.data import tokenize_task
from lorasearch.training.metrics import chance_level
from lorasearch.training.trial import load_data, load_inputs

ENDED = (TrialState.COMPLETE, TrialState.PRUNED)


def run_search(
    fixed: Fixed,
    config: SearchConfig,
    progress: SearchProgress | None = None,
    tracker: Tracking | None = None,
) -> optuna.Study:
    """Add ``config.trials`` trials to the study (created or resumed) and return it.

    ``tracker`` records the study elsewhere too (MLflow: ``lorasearch.tracking.make_tracking``,
    made before this is called so a malformed URI fails before anything is written); None
    records it in the Optuna study only."""
    progress = progress or SearchProgress()
    tracker = NoTracking() if tracker is None else tracker
    config.space.validate(fixed.train.steps)
    config.rungs(fixed.train.steps)  # bad --eta / --min-steps fail here, before anything is written
    task = load_data(fixed.data)  # bad data fails here, before any study is written
    _, loaded = load_inputs(fixed.data, fixed.model)  # and a bad model (both cached for trials)
    config.space.check_placement(loaded.target_modules)  # and a placement this model lacks
    tokenize_task(task, loaded.tokenizer, fixed.train.max_length)  # cached too
    del loaded
    if config.max_params is not None:
        check_budget(fixed, config)
    name = config.study_name or default_study_name(fixed)
    backend = open_storage(storage_url(config.storage), config.heartbeat_s)
    study = optuna.create_study(
        study_name=name,
        storage=backend,
        directions=["maximize", "minimize"],
        load_if_exists=True,
    )
    offset = len(study.trials)  # the sampler's seed offset: a resumed study draws anew
    _check_or_record(study, fixed, task, config, progress)
    study.sampler = make_sampler(config, offset)
    schedule = "\n".join(
        filter(None, [config.schedule(fixed.train), design.describe(study, config.space)])
    )
    progress.search_started(study, mask_url(storage_url(config.storage)), config.space, schedule)
    tracker.start_study(study, *_run_record(study, fixed, config))
    record = records.StudyRecord.of(study)

    def after_trial(study: optuna.Study, trial: FrozenTrial) -> None:
        done = [t for t in records.trial_records(study) if t.finished]
        best = max((t.values[0] for t in done if t.state == "COMPLETE"), default=None)
        volume = hypervolume(done, record.chance, record.full_params)
        tracker.finish_trial(records.TrialRecord.of(trial))
        if tracker.active:
            _update_tracking(tracker, study, record.metric_name, done, volume)
        progress.trial_ended(trial, volume, best)

    objective = make_objective(study, fixed, config, progress, tracker)
    with _gc_frozen():
        try:
            if config.total:
                _optimize_to_total(study, objective, config, after_trial, tracker, fixed)
            elif config.fidelity:
                _optimize_with_promotions(study, objective, config, after_trial, fixed)
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
            tracker.close_abandoned(study)
            tracker.end_study(interrupted=True)
            raise
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


def _optimize_with_promotions(study, objective, config: SearchConfig, after_trial, fixed) -> None:
    """This run's ``config.trials`` configurations, with the promotions they cause (Optuna runs
    an enqueued promotion before it samples anew), then :func:`promotion.finish` until nothing
    is promoted: ``--trials`` counts configurations, and a promotion is extra."""
    started, rungs, ran = time.monotonic(), config.rungs(fixed.train.steps), []

    def counted(study: optuna.Study, trial: FrozenTrial) -> None:
        ran.append(not promotion.is_continuation(trial))
        after_trial(study, trial)

    while config.timeout_s is None or time.monotonic() - started < config.timeout_s:
        if sum(ran) >= config.trials and not promotion.pending(study):
            if not promotion.finish(study, rungs, config.eta):
                return
        study.optimize(
            objective, n_trials=1, catch=(Exception,), callbacks=[counted], gc_after_trial=True
        )


def _optimize_to_total(
    study, objective, config: SearchConfig, after_trial, tracker, fixed: Fixed
) -> None:
    """Run trials until the study holds ``config.trials`` ended (COMPLETE or PRUNED)
    configurations, then the promotions they cause (``search/promotion.py``: a promotion
    continues a paused trial and is not counted).

    Re-running the same command after a crash completes the count; several workers with the same
    target share it. Trials still RUNNING elsewhere count as in progress until they end or their
    worker's heartbeat lapses (then they are failed, retried once, and no longer count).
    """
    started, failed = time.monotonic(), []
    rungs = config.rungs(fixed.train.steps) if config.fidelity else ()

    def counted(study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state == TrialState.FAIL:
            failed.append(trial.number)
        after_trial(study, trial)

    while True:
        optuna.storages.fail_stale_trials(study)
        tracker.close_abandoned(study)
        trials = [t for t in study.get_trials(deepcopy=False) if not promotion.is_continuation(t)]
        ended = sum(t.state in ENDED for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        if config.timeout_s is not None and time.monotonic() - started > config.timeout_s:
            return
        if ended >= config.trials:
            if promotion.pending(study):  # run or wait for the promotions
                _run_or_wait(study, objective, counted, config)
            elif running:  # a configuration still running elsewhere may promote more
                time.sleep(min(2.0, config.heartbeat_s))
            elif not (rungs and promotion.finish(study, rungs, config.eta)):
                return
            continue
        if len(failed) > max(3, config.trials):  # a broken setup must not loop forever
            raise LorasearchError(
                f"{len(failed)} trials failed in this run; stopping (see `lorasearch pareto`)"
            )
        if ended + running >= config.trials:  # the rest runs elsewhere: promote, or wait
            _run_or_wait(study, objective, counted, config)
            continue
        study.optimize(
            objective, n_trials=1, catch=(Exception,), callbacks=[counted], gc_after_trial=True
        )


def _run_or_wait(study, objective, counted, config: SearchConfig) -> None:
    """Run a waiting promotion, or wait while the only ones left run elsewhere."""
    if study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        study.optimize(
            objective, n_trials=1, catch=(Exception,), callbacks=[counted], gc_after_trial=True
        )
    else:
        time.sleep(min(2.0, config.heartbeat_s))


def _check_or_record(
    study: optuna.Study, fixed: Fixed, task, config: SearchConfig, progress: SearchProgress
) -> None:
    """A new study records what it searches; a resumed one must be searching the same thing."""
    if records.is_lorasearch(study):
        record = records.StudyRecord.of(study)  # (a newer record version stops here)
        old = record.fixed
        if (old.data, old.model) != (fixed.data, fixed.model):
            raise LorasearchError(
                f"study '{study.study_name}' searches another task or model; "
                "use the same --task/--data/--model options, or another --study"
            )
        _keep_rungs(study.study_name, record, fixed, config)
        if config.initial_design and not record.settings.get("initial_design"):
            progress.warning(
                f"--initial-design starts a new study; '{study.study_name}' goes on without it"
            )
        config.initial_design = bool(record.settings.get("initial_design"))  # (its own, kept)
        records.write_search(study, config.space, config.settings())
        return
    config.pin_rungs(fixed.train.steps)
    records.write_search(study, config.space, config.settings())  # before `fixed`, which ends
    if config.design and not study.trials:  # (a study made elsewhere may hold some)
        if not _enqueue_design(study, fixed, config) and config.initial_design:
            progress.warning(
                "--initial-design: none of its configurations fits this space "
                "(--variants, a space file's ranges) or --max-params"
            )
    _, loaded = load_inputs(fixed.data, fixed.model)  # the record: whoever sees it sees all
    records.write_new_study(
        study,
        fixed,
        task.spec.metric,
        chance_level(task.spec.metric, task.dev.labels, task.num_labels),
        sum(p.numel() for p in loaded.model.parameters()),
    )


def _enqueue_design(study: optuna.Study, fixed: Fixed, config: SearchConfig) -> int:
    """The initial design's points (search/design.py) that fit ``--max-params``, as the
    study's first trials, at most ``--trials`` of them; returns how many."""
    space, steps = config.space, fixed.train.steps

    def fits(variant: str, knobs: dict) -> bool:
        if config.max_params is None:
            return True
        own = space.adapter_knobs(variant, knobs, steps)
        return planned_trainable(fixed, variant, own) <= config.max_params

    return len(design.enqueue_design(study, space, config.trials, fits))


def _keep_rungs(name: str, record, fixed: Fixed, config: SearchConfig) -> None:
    """A resumed study keeps the rungs it was searched with (a study from before the rungs:
    none), so its trials stay comparable at each rung; its full budget R must not move."""
    stored = record.search_config(trials=1)
    for key in FIDELITY_SETTINGS:
        setattr(config, key, getattr(stored, key))
    if config.fidelity and record.fixed.train.steps != fixed.train.steps:
        raise LorasearchError(
            f"study '{name}' is searched with rungs up to --max-steps "
            f"{record.fixed.train.steps}; resume it with that budget, or use another --study"
        )


def _run_record(study: optuna.Study, fixed: Fixed, config: SearchConfig):
    """The parent run's params (fixed for the study's life) and tags (may change on resume)."""
    params = {
        "study": study.study_name,
        "task": fixed.data.task or "",
        "data": fixed.data.data or "",
        "metric": records.metric_name(study),
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
        "fidelity": (
            f"rungs {','.join(map(str, config.rungs(fixed.train.steps)))}, eta {config.eta}, "
            f"signal {config.signal}"
            if config.fidelity
            else "off"
        ),
        "max_params": str(config.max_params or ""),
        "train": json.dumps(asdict(fixed.train)),
    }
    return params, tags


def _update_tracking(tracker: Tracking, study, metric: str, done, volume: float) -> None:
    """After a trial: the study's hypervolume, front, run tags and Pareto plot."""
    front = {t.number for t in records.front(study)}
    runs = {t.number: t.run_id for t in done if t.run_id}
    points = study_points(done, front)
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

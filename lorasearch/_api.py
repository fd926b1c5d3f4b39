"""The Python API: what each CLI command does, as one call returning a dataclass.

Every function takes paths and ids as the CLI does, or objects: ``data`` a pandas DataFrame, a
``datasets`` Dataset / DatasetDict or a dict of split -> either (with ``text_column`` etc. naming
its columns); ``model`` a loaded ``PreTrainedModel`` with ``tokenizer``. User mistakes raise
:class:`~lorasearch.LorasearchError` with the CLI's message. Heavy libraries load on first call.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

from lorasearch import _options as opts
from lorasearch._export import chosen, export, say_on_stderr
from lorasearch._load import LoadedAdapter, load
from lorasearch._predict import predict
from lorasearch._results import Pick, RefitReport, RefitRow, SearchReport
from lorasearch.errors import LorasearchError

if TYPE_CHECKING:
    from lorasearch.training.trainer import TrainResult

__all__ = ["LoadedAdapter", "load", "optimize", "pick", "predict", "refit", "report", "train"]


def _quiet() -> None:
    from lorasearch._quiet import quiet_libraries

    quiet_libraries()


def train(
    data: Any = None,
    task: str | None = None,
    model: Any = None,
    tokenizer: Any = None,
    variant: str = "lora",
    knobs: dict[str, Any] | None = None,
    *,
    steps: int = 300,
    export_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = False,
    **options: Unpack[opts.TaskOptions],
) -> TrainResult:
    """Train one adapter configuration and measure it honestly (``lorasearch train``).

    ``knobs`` set the variant's knobs (``rank``, ``alpha``, ``dropout``, ``lr``, ...; see
    ``lorasearch variants``); ``options`` are the shared task options (:class:`TaskOptions`:
    columns, metric, subsamples, batch size, max length, seed, device, ...). ``export_dir``
    writes the adapter with ``lorasearch.json`` (refusing a non-empty folder unless ``force``);
    ``progress`` shows a bar on stderr.
    """
    from lorasearch._progress import progress_bar
    from lorasearch.adapters import build_adapter
    from lorasearch.training.trial import Trial, run_trial

    _quiet()
    options = opts.with_defaults("train", options)
    knobs = dict(knobs or {})
    for name, value in opts.placement_knobs(options).items():
        if knobs.setdefault(name, value) != value:
            raise LorasearchError(f"--{name} {value} and the knob {name}={knobs[name]} disagree")
    adapter = build_adapter(variant, **knobs)
    task, data = opts.one(task, "task", "train"), opts.one(data, "data", "train")
    data_config, model_config, train_config = opts.configs(
        task, opts.data_source(data), opts.model_source(model, tokenizer), steps, options
    )
    trial = Trial(data=data_config, model=model_config, adapter=adapter, train=train_config)
    if export_dir is not None:
        export_dir = Path(export_dir)
        opts.check_export_dir(export_dir, force)
    bar = progress_bar(steps, variant) if progress else contextlib.nullcontext(None)
    with bar as update:
        return run_trial(trial, progress=update, export_dir=export_dir)


def optimize(
    data: Any = None,
    task: str | list[str] | None = None,
    model: Any = None,
    tokenizer: Any = None,
    *,
    trials: int | None = None,
    total_trials: int | None = None,
    steps: int | None = None,
    max_steps: int | None = None,
    min_steps: int | None = None,
    eta: int | None = None,
    fidelity: bool | None = None,
    fidelity_signal: str | None = None,
    variants: str | list[str] | None = None,
    space: dict | str | Path | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    sampler: str | None = None,
    max_params: int | None = None,
    early_stop: bool = True,
    early_stop_margin: float = 0.01,
    initial_design: bool | None = None,
    timeout_s: float | None = None,
    heartbeat_s: float = 30.0,
    tracking_uri: str | None = None,
    tracking: bool = True,
    progress: bool = False,
    **options: Unpack[opts.TaskOptions],
) -> SearchReport | list[SearchReport]:
    """Run or resume a search over variant × hyperparameters (``lorasearch search``).

    Adds ``trials`` trials to the study ``study_name`` in ``storage`` (created, or resumed when
    it exists), or with ``total_trials`` runs until the study holds that many ended trials.
    ``variants`` narrows the draw; ``space`` narrows ranges or fixes knobs (a TOML/YAML file, or
    a dict shaped like one); ``sampler`` is one of ``lorasearch.search.samplers.SAMPLERS``
    (default tpe). Several tasks (``task=[...]``, ``data`` one per task or one folder of task
    folders) run one study each and return one report each.

    ``initial_design`` (default on) starts a new study with known-good recipes on a ladder of
    placements, from VeRA on one block's query/value to LoRA at rank 64 on every projection
    (``search/design.py``); False leaves it out, True also says where it cannot apply.

    Multi-fidelity (default): each trial is evaluated at rungs ``max_steps``/``eta``^k down to
    ``min_steps`` (default R/27) and goes on past a rung only if it ranks in the top 1/eta
    there (Pareto layer, then hypervolume contribution); the others pause, and a later promotion
    continues them from their checkpoint (``trials`` counts configurations; once all have run,
    each rung promotes its top ceil(n/eta) and as many again taken in turn from each decade of
    params, until nothing goes on); ``max_steps`` (R, the full budget; ``steps`` alone means
    the same) defaults to 300, ``eta`` to 3, ``fidelity_signal`` to ``dev_loss`` (or
    ``dev_metric``); ``fidelity=False`` trains every trial to R. A resumed study keeps its own
    rungs.

    Without ``data`` and ``task``, joins the existing ``study_name`` as ``lorasearch worker``
    does: its task, model, space, sampler and rungs come from the study.
    """
    from lorasearch.search.config import Fixed, SearchConfig
    from lorasearch.search.samplers import DEFAULT_SAMPLER

    _quiet()
    options = opts.with_defaults("optimize", options)
    count, total = opts.trial_count(trials, total_trials)
    counts = {"trials": count, "total": total, "heartbeat_s": heartbeat_s, "timeout_s": timeout_s}
    if not opts.as_list(data) and not opts.as_list(task) and study_name is not None:
        given = {"variants": variants, "space": space, "sampler": sampler, "max_params": max_params,
                 "steps": steps, "max_steps": max_steps, "min_steps": min_steps, "eta": eta,
                 "fidelity": fidelity, "fidelity_signal": fidelity_signal}  # fmt: skip
        if any(value is not None for value in given.values()):
            raise LorasearchError(
                f"joining study '{study_name}': its space, sampler, budget and rungs come from "
                "the study"
            )
        return _join(
            study_name, storage, counts, options["device"], tracking_uri, tracking, progress
        )
    steps = opts.full_budget(steps, max_steps)
    config = SearchConfig(
        space=opts.fix_placement(opts.search_space(space, variants), options),
        storage=storage, study_name=study_name,
        sampler=sampler or DEFAULT_SAMPLER, seed=options["seed"], early_stop=early_stop,
        margin=early_stop_margin, max_params=max_params, initial_design=initial_design,
        fidelity=True if fidelity is None else fidelity, min_steps=min_steps,
        eta=3 if eta is None else eta, signal=fidelity_signal or "dev_loss", **counts,
    )  # fmt: skip
    if steps >= 1:
        config.rungs(steps)  # bad --eta / --min-steps: the user's error, before anything runs
    _tracking(tracking_uri, tracking)  # a malformed URI fails here, before anything is written
    jobs = opts.task_jobs(task, data)
    model = opts.model_source(model, tokenizer)
    fixes = [  # every task's options checked before any search starts
        Fixed(*opts.configs(name, opts.data_source(source), model, steps, options))
        for name, source in jobs
    ]
    if len(jobs) == 1:
        return _search(fixes[0], config, tracking_uri, tracking, progress)
    reports = []
    for (name, _), fixed in zip(jobs, fixes, strict=True):
        each = dataclasses.replace(
            config, study_name=f"{study_name}-{name}" if study_name else None
        )
        reports.append(_search(fixed, each, tracking_uri, tracking, progress))
    return reports


def _tracking(uri: str | None, enabled: bool, warn=None):
    from lorasearch.tracking import make_tracking

    return make_tracking(uri, enabled, warn=warn)


def _search(fixed, config, tracking_uri, tracking, progress) -> SearchReport:
    from lorasearch._progress import SearchBar
    from lorasearch.search.progress import SearchProgress
    from lorasearch.search.report import study_report
    from lorasearch.search.study import run_search

    hooks = SearchBar(config.trials, fixed.train.steps) if progress else None
    with hooks or contextlib.nullcontext():
        hooks = hooks or SearchProgress()
        tracker = _tracking(tracking_uri, tracking, warn=hooks.warning)
        study = run_search(fixed, config, hooks, tracker=tracker)
    return SearchReport.from_dict(study_report(study))


def _join(study_name, storage, counts, device, tracking_uri, tracking, progress) -> SearchReport:
    """A worker: the study's own task, model, space and sampler, on this machine's ``device``."""
    from lorasearch.search.records import StudyRecord
    from lorasearch.search.storage import load_study

    _tracking(tracking_uri, tracking)
    record = StudyRecord.of(load_study(study_name, storage))
    fixed = dataclasses.replace(
        record.fixed, train=dataclasses.replace(record.fixed.train, device=device)
    )
    config = record.search_config(storage=storage, **counts)
    return _search(fixed, config, tracking_uri, tracking, progress)


def report(study_name: str, storage: str | None = None) -> SearchReport:
    """A study's trials, Pareto front and hypervolume (``lorasearch pareto``)."""
    from lorasearch.search.report import study_report
    from lorasearch.search.storage import load_study

    _quiet()
    return SearchReport.from_dict(study_report(load_study(study_name, storage)))


def refit(
    study_name: str,
    storage: str | None = None,
    seeds: int = 3,
    steps: int | None = None,
    progress: bool = False,
    lr_scales: Sequence[float] = (),
    tracking_uri: str | None = None,
    tracking: bool = True,
) -> RefitReport:
    """Retrain each Pareto configuration with ``steps`` (default: the search's) under ``seeds``
    seeds: mean ± std on dev and test (``lorasearch refit``). With ``lr_scales`` each is also
    refit at its searched learning rate times each scale, and the row of the scale with the best
    mean dev is ``picked``. A seed whose loss turns non-finite or that runs out of memory is
    named in its row's ``failed``; the others go on. Each seed is recorded in MLflow as a child
    run of the study's run (``lorasearch.role`` = refit), as the search's trials are."""
    from lorasearch._format import at_rate
    from lorasearch.search.refit import refit_front
    from lorasearch.search.storage import load_study

    _quiet()
    tracker = _tracking(tracking_uri, tracking)  # a malformed URI fails here, before anything
    study = load_study(study_name, storage)

    def named(refit) -> str:
        return f"refit trial {refit.number}{at_rate(refit.lr_scale)}"

    def on_run(refit, seed: int) -> None:
        say_on_stderr(f"{named(refit)} ({refit.variant}) seed {seed}")

    def on_failed(refit, seed: int, why: str) -> None:
        say_on_stderr(f"{named(refit)} seed {seed} failed: {why}; the other runs go on")

    refits = refit_front(
        study, seeds, steps, on_run if progress else None, on_failed if progress else None,
        lr_scales=lr_scales, tracker=tracker,
    )  # fmt: skip
    return RefitReport(study.study_name, [RefitRow(**r.summary()) for r in refits])


def pick(
    study_name: str,
    storage: str | None = None,
    max_params: int | None = None,
    rule: str = "best",
    export_dir: str | Path | None = None,
    force: bool = False,
    register: bool = False,
    tracking_uri: str | None = None,
    progress: bool = False,
    by: str = "auto",
) -> Pick:
    """Choose the front's adapter for a parameter budget and say why (``lorasearch best``).

    ``rule`` "best": the highest dev metric within ``max_params``; "knee": where more params
    stop paying. ``by`` "search" ranks by the search's dev, "refit" by the mean dev over the
    study's last ``refit`` (each configuration at its best rate scale), "auto" (default) by the
    refit when it covers every front configuration within the budget. ``export_dir`` writes the
    search's own trained adapter (from MLflow; retrained with the search's seed when it was not
    stored; chosen by a refit, retrained as its seed with the best dev), ``lorasearch.json`` and
    a model card;
    ``register`` registers it in the MLflow Model Registry as ``lorasearch-<study>``, alias
    ``best``. ``progress`` says on stderr when the export has to retrain.
    """
    from lorasearch.search.storage import load_study

    _quiet()
    tracker = _tracking(tracking_uri, True)  # a malformed URI fails here, before anything
    if export_dir is not None:
        export_dir = Path(export_dir)
        opts.check_export_dir(export_dir, force)
    study = load_study(study_name, storage)
    chosen_pick, choice = chosen(study, max_params, rule, by)
    if export_dir is not None or register:
        say = say_on_stderr if progress else (lambda message: None)
        export(study, chosen_pick, choice, tracker, export_dir, register, say)
    return chosen_pick


def best_per_task(reports: list[SearchReport], storage: str | None, max_params: int | None):
    """The end of a several-task search: each study's best adapter within ``max_params``
    (or why there is none), with its report: ``lorasearch search --task A --task B --json``."""
    from lorasearch.search.storage import load_study

    rows = []
    for result in reports:
        try:
            best, _ = chosen(load_study(result.study, storage), max_params)
        except LorasearchError as exc:
            rows.append({"study": result.study, "best": None, "why": str(exc)})
            continue
        keys = ("trial", "variant", "hyperparameters", "dev_metric", "test_metric",
                "trainable_params")  # fmt: skip
        rows.append({
            "study": result.study, "metric_name": best.metric_name,
            "best": {key: getattr(best, key) for key in keys}, "why": best.why,
            "report": result.to_json(),
        })  # fmt: skip
    return {"tasks": rows}

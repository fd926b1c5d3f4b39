"""The ``lorasearch`` command line. User mistakes end as one line on stderr and exit code 2."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from pathlib import Path

import click

from lorasearch.errors import LorasearchError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and turn user errors into one line and exit code 2."""
    try:
        code = cli.main(args=argv, prog_name="lorasearch", standalone_mode=False)
    except (LorasearchError, click.ClickException) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        click.echo(f"lorasearch: error: {message}", err=True)
        return EXIT_USAGE
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("lorasearch: interrupted", err=True)
        return EXIT_INTERRUPTED
    return code if isinstance(code, int) else 0


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="lorasearch")
def cli() -> None:
    """Find the best LoRA-family adapter for a labelled text task."""
    from lorasearch._quiet import quiet_libraries

    quiet_libraries()


def _task_options(command):
    """Options that fix the task, model and training budget (shared with ``search``)."""
    options = [
        click.option(
            "--task",
            multiple=True,
            help="Preset: sst2, agnews, mrpc, rte, cola (sets columns, metric, hub id); "
            "search takes several.",
        ),
        click.option(
            "--data",
            multiple=True,
            help="Hub dataset id, or a local file / folder with train.*, dev.*, test.*; "
            "with several --task: one per task, or a folder holding one folder per task.",
        ),
        click.option("--text-column", help="Column with the text."),
        click.option("--text-pair-column", help="Second text column, for sentence-pair tasks."),
        click.option("--label-column", help="Column with the label (ids or names)."),
        click.option("--metric", help="accuracy (default), macro_f1, f1 or mcc."),
        click.option("--train-samples", type=int, help="Use a seeded subsample of train."),
        click.option(
            "--eval-samples", type=int, help="Use a seeded subsample of dev (test stays whole)."
        ),
        click.option(
            "--model", help="Hub id or local folder; default: the bundled all-MiniLM-L6-v2."
        ),
        click.option("--targets", help="Comma-separated module names to adapt; default: detected."),
        click.option(
            "--trust-remote-code", is_flag=True, help="Allow the model's own code to run."
        ),
        click.option(
            "--steps",
            "--search-steps",
            "steps",
            type=int,
            default=300,
            show_default=True,
            help="Training steps (per trial, in a search).",
        ),
        click.option("--batch-size", type=int, default=32, show_default=True),
        click.option(
            "--max-length", type=int, default=64, show_default=True, help="Tokens per example."
        ),
        click.option(
            "--eval-every", type=int, help="Dev evaluation interval in steps [default: steps/5]."
        ),
        click.option("--warmup-ratio", type=float, default=0.06, show_default=True),
        click.option("--weight-decay", type=float, default=0.0, show_default=True),
        click.option(
            "--group-by-length/--no-group-by-length",
            default=True,
            show_default=True,
            help="Batch examples of similar length (less padding).",
        ),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option(
            "--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command()
@_task_options
@click.option("--variant", default="lora", show_default=True, help="Adapter variant.")
@click.option("--rank", type=int, help="Adapter rank r [default: 8].")
@click.option("--alpha", type=float, help="LoRA alpha [default: 2·rank].")
@click.option("--dropout", type=float, help="Dropout on the adapter branch [default: 0.05].")
@click.option(
    "--lr",
    type=float,
    help="Learning rate [default: 1e-3; LoRA+ 2.5e-4 (A's), AdaLoRA 5e-3, VeRA 1e-2].",
)
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Any variant knob.")
@click.option(
    "--export", "export_dir", type=click.Path(path_type=Path), help="Write the adapter here."
)
@click.option("--force", is_flag=True, help="Allow --export into a non-empty folder.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def train(variant, rank, alpha, dropout, lr, settings, export_dir, force, as_json, **options):
    """Train one adapter configuration and report its honest result."""
    from lorasearch.adapters import build_adapter, get_variant
    from lorasearch.training.trial import Trial, run_trial

    knobs = {
        k: v
        for k, v in dict(rank=rank, alpha=alpha, dropout=dropout, lr=lr).items()
        if v is not None
    }
    knobs |= parse_settings(settings, get_variant(variant).config_class)
    adapter = build_adapter(variant, **knobs)
    data, model, train_config = _settings(_one_task(options, "train"))
    trial = Trial(data=data, model=model, adapter=adapter, train=train_config)
    if export_dir is not None:
        _check_export_dir(export_dir, force)
    with progress_bar(trial.train.steps, variant) as update:
        result = run_trial(trial, progress=update, export_dir=export_dir)
    if as_json:
        click.echo(json.dumps(result.to_json()))
    else:
        _print_result(result)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def variants(as_json):
    """List the adapter variants and their knobs with defaults."""
    from lorasearch.adapters import VARIANTS

    table = {
        name: {f.name: f.default for f in dataclasses.fields(cls.config_class)}
        for name, cls in VARIANTS.items()
    }
    if as_json:
        click.echo(json.dumps(table))
        return
    for name, knobs in table.items():
        module_doc = sys.modules[VARIANTS[name].__module__].__doc__ or name
        click.echo(f"{name:11s} {module_doc.strip().splitlines()[0].replace('``', '')}")
        click.echo(" " * 12 + ", ".join(f"{k}={v}" for k, v in knobs.items()))


@cli.command()
@_task_options
@click.option("--trials", type=int, help="Trials to add to the study.")
@click.option(
    "--total-trials",
    type=int,
    help="Instead of --trials: run until the study holds N ended trials (re-running completes "
    "it; workers sharing the study split the N).",
)
@click.option(
    "--heartbeat",
    "heartbeat_s",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds between a worker's heartbeats; a trial silent for two is failed and retried.",
)
@click.option("--timeout", "timeout_s", type=float, help="Stop starting trials after S seconds.")
@click.option("--storage", help="Optuna storage URL [default: sqlite:///lorasearch.db].")
@click.option("--study", "study_name", help="Study name; re-running with it resumes.")
@click.option("--sampler", default="tpe", show_default=True, help="tpe, nsga2, random or gp.")
@click.option("--variants", help="Comma-separated variants to search [default: all eight].")
@click.option("--space", "space_file", help="TOML/YAML file narrowing ranges or fixing knobs.")
@click.option("--max-params", type=int, help="Reject configurations with more trainable params.")
@click.option("--early-stop/--no-early-stop", default=True, show_default=True)
@click.option("--early-stop-margin", type=float, default=0.01, show_default=True)
@click.option(
    "--tracking-uri",
    help="MLflow store [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here].",
)
@click.option("--no-tracking", is_flag=True, help="Record in the Optuna study only, not MLflow.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def search(trials, total_trials, heartbeat_s, timeout_s, storage, study_name, sampler, variants,
           space_file, max_params, early_stop, early_stop_margin, tracking_uri, no_tracking,
           as_json, **options):  # fmt: skip
    """Search variant × hyperparameters: maximise the dev metric, minimise trainable params."""
    from lorasearch.search.study import Fixed, SearchConfig, run_search
    from lorasearch.spaces import SearchSpace, load_space_file

    trials, total = _trial_count(trials, total_trials)
    chosen = [v.strip() for v in variants.split(",") if v.strip()] if variants else None
    space = load_space_file(space_file, chosen) if space_file else SearchSpace.default(chosen)
    config = SearchConfig(
        trials=trials, total=total, heartbeat_s=heartbeat_s, space=space, timeout_s=timeout_s, storage=storage, study_name=study_name,
        sampler=sampler, seed=options["seed"], early_stop=early_stop, margin=early_stop_margin,
        max_params=max_params, tracking_uri=tracking_uri, tracking=not no_tracking,
    )  # fmt: skip
    jobs = _task_jobs(options)
    if len(jobs) == 1:
        fixed = Fixed(*_settings(jobs[0]))
        with SearchBar(trials, fixed.train.steps) as bar:
            study = run_search(fixed, config, bar)
        _report(study, as_json)
        return
    fixes = [Fixed(*_settings(job)) for job in jobs]  # every task's options checked first
    studies = []
    for job, fixed in zip(jobs, fixes, strict=True):
        name = f"{study_name}-{job['task']}" if study_name else None
        with SearchBar(trials, fixed.train.steps) as bar:
            studies.append(run_search(fixed, dataclasses.replace(config, study_name=name), bar))
    _best_per_task(studies, max_params, as_json)


def _trial_count(trials: int | None, total_trials: int | None) -> tuple[int, bool]:
    if (trials is None) == (total_trials is None):
        raise LorasearchError("give --trials N (trials to add) or --total-trials N (a target)")
    return (trials, False) if trials is not None else (total_trials, True)


@cli.command()
@click.option("--study", "study_name", required=True, help="The study to join.")
@click.option("--storage", required=True, help="Its Optuna storage URL (e.g. postgresql://...).")
@click.option("--trials", type=int, help="Trials to add.")
@click.option("--total-trials", type=int, help="Run until the study holds N ended trials.")
@click.option("--heartbeat", "heartbeat_s", type=float, default=30.0, show_default=True)
@click.option("--timeout", "timeout_s", type=float, help="Stop starting trials after S seconds.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--tracking-uri",
    help="MLflow store [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here].",
)
@click.option("--no-tracking", is_flag=True, help="Record in the Optuna study only, not MLflow.")
def worker(study_name, storage, trials, total_trials, heartbeat_s, timeout_s, device,
           tracking_uri, no_tracking):  # fmt: skip
    """Join an existing study and run its trials: task, model, space and sampler come from it."""
    from lorasearch.search.study import Fixed, SearchConfig, load_study, run_search
    from lorasearch.spaces import SearchSpace

    trials, total = _trial_count(trials, total_trials)
    study = load_study(study_name, storage)
    fixed = Fixed.from_json(study.user_attrs["fixed"])
    fixed.train = dataclasses.replace(fixed.train, device=device)
    search = json.loads(study.user_attrs.get("search", "{}"))
    config = SearchConfig(
        trials=trials, total=total, heartbeat_s=heartbeat_s, timeout_s=timeout_s,
        space=SearchSpace.from_json(study.user_attrs["space"]), storage=storage,
        study_name=study_name, tracking_uri=tracking_uri, tracking=not no_tracking, **search,
    )  # fmt: skip
    with SearchBar(trials, fixed.train.steps) as bar:
        study = run_search(fixed, config, bar)
    _report(study, False)


def _one_task(options: dict, command: str) -> dict:
    """``options`` with a single --task / --data (tuples from click) as plain values."""
    for key in ("task", "data"):
        if len(options[key]) > 1:
            raise LorasearchError(f"{command} takes one --{key}; search takes several")
    return options | {key: options[key][0] if options[key] else None for key in ("task", "data")}


def _task_jobs(options: dict) -> list[dict]:
    """One option set per --task: --data given once per task, or one folder of task folders."""
    tasks, data = options["task"], options["data"]
    if len(tasks) <= 1:
        return [_one_task(options, "search")]
    if len(set(tasks)) != len(tasks):
        raise LorasearchError("a --task is given twice")
    if len(data) == len(tasks):
        pairs = list(zip(tasks, data, strict=True))
    elif len(data) == 1 and Path(data[0]).is_dir():
        pairs = [(task, str(Path(data[0]) / task)) for task in tasks]
        missing = [p for _, p in pairs if not Path(p).exists()]
        if missing:
            raise LorasearchError(f"no folder {missing[0]} for its --task under --data {data[0]}")
    elif not data:
        pairs = [(task, None) for task in tasks]  # the presets' hub ids
    else:
        raise LorasearchError(
            f"{len(tasks)} --task but {len(data)} --data: give one --data per task, "
            "or one folder holding a folder per task"
        )
    return [options | {"task": task, "data": path} for task, path in pairs]


def _best_per_task(studies: list, max_params: int | None, as_json: bool) -> None:
    """The end of a several-task search: one line per task, its best adapter."""
    from rich.console import Console
    from rich.table import Table

    from lorasearch.search.select import choose
    from lorasearch.search.study import study_report

    rows = []
    for study in studies:
        try:
            choice = choose(study, max_params)
        except LorasearchError as exc:
            rows.append({"study": study.study_name, "best": None, "why": str(exc)})
            continue
        t = choice.trial
        rows.append(
            {
                "study": study.study_name,
                "metric_name": study.user_attrs["metric_name"],
                "best": {
                    "trial": t.number, "variant": t.user_attrs["variant"],
                    "hyperparameters": t.user_attrs["knobs"], "dev_metric": t.values[0],
                    "test_metric": t.user_attrs.get("test_metric"),
                    "trainable_params": int(t.values[1]),
                },
                "why": choice.why,
                "report": study_report(study),
            }
        )  # fmt: skip
    if as_json:
        click.echo(json.dumps({"tasks": rows}))
        return
    table = Table(title="best adapter per task (highest dev metric on the front)")
    for column in ("study", "trial", "variant", "hyperparameters", "dev", "test", "params"):
        table.add_column(column)
    for row in rows:
        b = row["best"]
        if b is None:
            table.add_row(row["study"], "", "", row["why"], "", "", "")
            continue
        metric = row["metric_name"]
        table.add_row(
            row["study"], str(b["trial"]), b["variant"],
            ", ".join(f"{k}={_short(v)}" for k, v in b["hyperparameters"].items()),
            f"{metric} {b['dev_metric']:.4f}", f"{metric} {b['test_metric']:.4f}",
            f"{b['trainable_params']:,}",
        )  # fmt: skip
    Console(width=None if Console().is_terminal else 200).print(table)


@cli.command()
@click.option("--study", "study_name", required=True, help="Study name.")
@click.option("--storage", help="Optuna storage URL [default: sqlite:///lorasearch.db].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def pareto(study_name, storage, as_json):
    """Print a study's trials and its Pareto front (dev metric vs trainable params)."""
    from lorasearch.search.study import load_study

    _report(load_study(study_name, storage), as_json)


@cli.command()
@click.option("--study", "study_name", required=True, help="Study name.")
@click.option("--storage", help="Optuna storage URL [default: sqlite:///lorasearch.db].")
@click.option("--seeds", type=int, default=3, show_default=True, help="Seeds per configuration.")
@click.option("--steps", type=int, help="Training steps [default: the search's].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def refit(study_name, storage, seeds, steps, as_json):
    """Retrain each Pareto configuration with more steps and seeds: mean ± std on dev and test."""
    from rich.console import Console
    from rich.table import Table

    from lorasearch.search.refit import refit_front
    from lorasearch.search.study import load_study

    study = load_study(study_name, storage)

    def on_run(number: int, variant: str, seed: int) -> None:
        click.echo(f"refit trial {number} ({variant}) seed {seed}", err=True)

    rows = [r.summary() for r in refit_front(study, seeds, steps, on_run)]
    if as_json:
        click.echo(json.dumps({"study": study.study_name, "refits": rows}))
        return
    metric = study.user_attrs["metric_name"]
    table = Table(
        title=f"study {study.study_name}: Pareto configurations refit over {seeds} seed(s)"
    )
    for column in (
        "#",
        "variant",
        "hyperparameters",
        f"search dev {metric}",
        "dev mean ± std",
        "test mean ± std",
        "trainable",
        "stored",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            str(r["number"]), r["variant"], ", ".join(f"{k}={_short(v)}" for k, v in r["params"].items()),
            f"{r['search_dev_metric']:.4f}", f"{r['dev_mean']:.4f} ± {r['dev_std']:.4f}",
            f"{r['test_mean']:.4f} ± {r['test_std']:.4f}", f"{r['trainable_params']:,}", f"{r['stored_params']:,}",
        )  # fmt: skip
    Console(width=None if Console().is_terminal else 200).print(table)


@cli.command()
@click.option("--study", "study_name", required=True, help="Study name.")
@click.option("--storage", help="Optuna storage URL [default: sqlite:///lorasearch.db].")
@click.option("--max-params", type=int, help="Trainable-parameter budget.")
@click.option(
    "--rule",
    type=click.Choice(["best", "knee"]),
    default="best",
    show_default=True,
    help="best: highest dev metric within the budget; knee: where more params stop paying.",
)
@click.option(
    "--export", "export_dir", type=click.Path(path_type=Path), help="Write the adapter here."
)
@click.option("--force", is_flag=True, help="Allow --export into a non-empty folder.")
@click.option(
    "--register", is_flag=True, help="Register it in the MLflow Model Registry as 'best'."
)
@click.option(
    "--tracking-uri",
    help="MLflow store [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here].",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def best(study_name, storage, max_params, rule, export_dir, force, register, tracking_uri,
         as_json):  # fmt: skip
    """Pick the front's adapter for a parameter budget, say why, export and register it."""
    import tempfile

    from lorasearch.search.select import choose, retrain
    from lorasearch.search.study import load_study
    from lorasearch.tracking.card import write_model_card
    from lorasearch.tracking.runs import RUN_ATTR, Tracker

    tracker = Tracker(tracking_uri)  # a malformed URI fails here, before anything is written
    if export_dir is not None:
        _check_export_dir(export_dir, force)
    study = load_study(study_name, storage)
    choice = choose(study, max_params, rule)
    trial, metric = choice.trial, study.user_attrs["metric_name"]
    run_id = trial.user_attrs.get(RUN_ATTR)
    out = {
        "study": study.study_name,
        "trial": trial.number,
        "variant": trial.user_attrs["variant"],
        "hyperparameters": trial.user_attrs["knobs"],
        "metric_name": metric,
        "dev_metric": trial.values[0],
        "test_metric": trial.user_attrs.get("test_metric"),
        "trainable_params": int(trial.values[1]),
        "stored_params": trial.user_attrs.get("stored_params"),
        "rule": rule,
        "why": choice.why,
        "mlflow_run_id": run_id,
        "export_dir": None,
        "export_source": None,
        "registered_version": None,
    }
    if not as_json:
        click.echo(
            f"trial {trial.number} ({out['variant']}, "
            + ", ".join(f"{k}={_short(v)}" for k, v in out["hyperparameters"].items())
            + f"): dev {metric} {out['dev_metric']:.4f}, test {out['test_metric']:.4f}, "
            f"{out['trainable_params']:,} trainable params; chosen as {choice.why}."
        )
    if export_dir is not None or register:
        # Built in a scratch folder and moved in only when complete: a failure never leaves
        # a half-written export, nor destroys what --force would replace.
        with tempfile.TemporaryDirectory(prefix="lorasearch-export-") as scratch:
            target = Path(scratch) / (export_dir.name if export_dir else "adapter")
            if run_id and tracker.download_adapter(run_id, target):
                out["export_source"] = "the search's trained adapter (MLflow artifact)"
            else:
                if not as_json:
                    click.echo(
                        "no stored adapter for this trial: retraining it as the search did",
                        err=True,
                    )
                result = retrain(study, trial, target)
                out["export_source"] = "retrained with the search's seed and budget"
                out["test_metric_retrained"] = result.test_metric
            write_model_card(target, study=study.study_name, trial=trial.number, why=choice.why)
            if export_dir is not None:
                _move_into(target, export_dir)
                out["export_dir"] = str(export_dir)
                if not as_json:
                    click.echo(
                        f"exported to {export_dir} ({out['export_source']}); see its README.md"
                    )
            if register:
                if not run_id:
                    raise LorasearchError(
                        f"trial {trial.number} has no MLflow run to register from "
                        "(the search ran with --no-tracking or MLflow was down)"
                    )
                name = f"lorasearch-{study.study_name}"
                version = tracker.register(run_id, name, target, choice.why)
                out["registered_version"] = version
                out["registered_model"] = name
                if not as_json:
                    click.echo(f"registered as {name} version {version}, alias 'best'")
    if as_json:
        click.echo(json.dumps(out))


def _move_into(source: Path, destination: Path) -> None:
    """Replace ``destination``'s contents with ``source``'s (the caller checked --force)."""
    import shutil

    destination.mkdir(parents=True, exist_ok=True)
    for item in destination.iterdir():
        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    for item in source.iterdir():
        shutil.move(str(item), destination / item.name)


@cli.command()
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (local only).")
@click.option(
    "--tracking-uri",
    help="MLflow store [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here].",
)
def ui(port, host, tracking_uri):
    """Serve the MLflow UI for this folder's store (127.0.0.1 unless --host says otherwise)."""
    import subprocess

    from lorasearch.tracking.runs import serve_command

    command = serve_command(tracking_uri, host, port)
    click.echo(f"MLflow UI on http://{host}:{port} (Ctrl-C stops it)", err=True)
    try:
        return subprocess.call(command)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _report(study, as_json: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from lorasearch.search.study import study_report

    report = study_report(study)
    if as_json:
        click.echo(json.dumps(report))
        return
    metric = report["metric_name"]
    table = Table(title=f"study {report['study']}: dev {metric} vs trainable params (* = Pareto)")
    for column in (
        "#",
        "state",
        "variant",
        "hyperparameters",
        f"dev {metric}",
        "params",
        "steps",
        "note",
    ):
        table.add_column(column)
    for row in report["trials"]:
        values = row["values"] or [None, None]
        table.add_row(
            f"{row['number']}{'*' if row['pareto'] else ''}",
            row["state"],
            row["variant"] or "",
            ", ".join(f"{k}={_short(v)}" for k, v in row["params"].items()),
            f"{values[0]:.4f}" if values[0] is not None else "",
            f"{int(values[1]):,}" if values[1] is not None else "",
            str(row["steps_used"]),
            row["reason"] or "",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # a file or pipe: don't fold the table to 80 columns
    console.print(table)
    console.print(
        f"Pareto front: trials {report['pareto']}; hypervolume {report['hypervolume']:.4f} "
        f"(reference: {metric} {report['reference_point']['metric']:.4f}, "
        f"log10 params {report['reference_point']['log10_params']:.2f}); "
        f"training steps used {report['steps_used']:,}"
    )


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class SearchBar:
    """Two bars on stderr: the study (trials, best, hypervolume) and the running trial."""

    def __init__(self, trials: int, steps: int):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        console = Console(stderr=True)
        self.quiet = os.environ.get("LORASEARCH_QUIET") == "1" or not console.is_terminal
        self.steps = steps
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), console=console, disable=self.quiet,
        )  # fmt: skip
        self.study_bar = self.progress.add_task("study", total=trials, info="")
        self.trial_bar = self.progress.add_task("trial", total=steps, info="")

    def __enter__(self) -> SearchBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def search_started(self, study, storage: str, space) -> None:
        done = len(study.trials)
        lines = [f"study {study.study_name} in {storage} ({done} trials so far); space in force:"]
        for variant, knobs in space.describe().items():
            lines.append(f"  {variant:11s} " + ", ".join(f"{k} {d}" for k, d in knobs.items()))
        self.progress.console.print("\n".join(lines), highlight=False, soft_wrap=True)

    def trial_started(self, number: int, variant: str, knobs: dict) -> None:
        text = f"#{number} {variant} " + ", ".join(f"{k}={_short(v)}" for k, v in knobs.items())
        self.progress.reset(
            self.trial_bar, total=self.steps, description=f"trial #{number}", info=text
        )

    def trial_step(self, step: int, loss: float, dev: float | None = None) -> None:
        info = f"loss {loss:.4f}" + (f"  dev {dev:.4f}" if dev is not None else "")
        self.progress.update(self.trial_bar, completed=step, info=info)

    def warning(self, message: str) -> None:
        self.progress.console.print(
            f"lorasearch: warning: {message}", highlight=False, markup=False
        )

    def trial_ended(self, trial, hypervolume: float, best: float | None) -> None:
        best_text = f"best {best:.4f}" if best is not None else "best -"
        self.progress.update(self.study_bar, advance=1, info=f"{best_text}  HV {hypervolume:.4f}")
        if self.quiet:
            values = (
                f"dev {trial.values[0]:.4f}, {int(trial.values[1]):,} params"
                if trial.values
                else ""
            )
            reason = (
                trial.user_attrs.get("prune_reason") or trial.user_attrs.get("fail_reason") or ""
            )
            click.echo(
                f"trial {trial.number} {trial.state.name} {trial.user_attrs.get('variant', '')} "
                f"{values} {reason}  |  {best_text}  HV {hypervolume:.4f}",
                err=True,
            )


def _settings(options: dict):
    """The task, model and training options every command shares, as their configs."""
    from lorasearch.training.trainer import TrainConfig
    from lorasearch.training.trial import DataConfig, ModelConfig

    data = DataConfig(
        task=options["task"],
        data=options["data"],
        text_column=options["text_column"],
        text_pair_column=options["text_pair_column"],
        label_column=options["label_column"],
        metric=options["metric"],
        train_samples=options["train_samples"],
        eval_samples=options["eval_samples"],
    )
    if data.task is None and data.data is None:
        raise LorasearchError("give --task NAME and/or --data PATH")
    targets = options["targets"]
    model = ModelConfig(
        model=options["model"],
        targets=tuple(t.strip() for t in targets.split(",") if t.strip()) if targets else None,
        trust_remote_code=options["trust_remote_code"],
    )
    train_config = TrainConfig(
        steps=options["steps"],
        batch_size=options["batch_size"],
        max_length=options["max_length"],
        eval_every=options["eval_every"],
        warmup_ratio=options["warmup_ratio"],
        weight_decay=options["weight_decay"],
        group_by_length=options["group_by_length"],
        seed=options["seed"],
        device=options["device"],
    )
    return data, model, train_config


def parse_settings(settings: tuple[str, ...], config_class) -> dict:
    """``--set key=value`` pairs, each value converted to the knob's declared type."""
    types = {f.name: str(f.type) for f in dataclasses.fields(config_class)}
    knobs = {}
    for item in settings:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise LorasearchError(f"--set expects KEY=VALUE, got '{item}'")
        if key not in types:
            raise LorasearchError(f"unknown knob '{key}'; this variant's knobs: {', '.join(types)}")
        knobs[key] = _coerce(key, types[key], value.strip())
    return knobs


def _coerce(key: str, type_name: str, value: str):
    if value.lower() == "none" and "None" in type_name:
        return None
    for name, convert in (("bool", _to_bool), ("int", int), ("float", float)):
        if type_name.startswith(name):
            try:
                return convert(value)
            except ValueError:
                raise LorasearchError(f"knob '{key}' expects {name}, got '{value}'") from None
    return value


def _to_bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _check_export_dir(directory: Path, force: bool) -> None:
    if directory.exists() and not directory.is_dir():
        raise LorasearchError(f"--export {directory} exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise LorasearchError(
            f"--export folder {directory} is not empty (pass --force to overwrite)"
        )


@contextlib.contextmanager
def progress_bar(total: int, label: str):
    """A bar on stderr with loss and dev metric; yields the trainer's ``progress`` callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    quiet = os.environ.get("LORASEARCH_QUIET") == "1" or not console.is_terminal
    fields = {"loss": float("nan"), "dev": float("nan")}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  dev {task.fields[dev]:.4f}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    ) as progress:
        bar = progress.add_task(label, total=total, **fields)

        def update(step: int, loss: float, dev: float | None = None) -> None:
            fields["loss"] = loss
            if dev is not None:
                fields["dev"] = dev
                if quiet:
                    click.echo(f"step {step}/{total}  loss {loss:.4f}  dev {dev:.4f}", err=True)
            progress.update(bar, completed=step, **fields)

        yield update


def _print_result(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result.variant} — {result.metric_name}", show_header=False)
    rows = [
        ("hyperparameters", json.dumps(result.hyperparameters)),
        (f"dev {result.metric_name} (best, step {result.best_step})", f"{result.dev_metric:.4f}"),
        (f"test {result.metric_name}", f"{result.test_metric:.4f}"),
        (
            "trainable params (adapter + head)",
            f"{result.trainable_params:,} ({result.adapter_params:,} + {result.head_params:,})",
        ),
        ("stored params (export)", f"{result.stored_params:,}"),
        (
            "steps",
            f"{result.steps} ({result.steps_per_second:.2f} steps/s, {result.tokens_per_second:,.0f} tokens/s)",
        ),
        ("wall time", f"{result.wall_time_s:.1f} s"),
        ("peak memory", f"{result.peak_memory_mb:,.0f} MB on {result.device}"),
        ("labels", ", ".join(result.label_names)),
    ]
    if result.export_dir:
        rows.append(("exported to", result.export_dir))
    for key, value in rows:
        table.add_row(key, value)
    Console().print(table)


if __name__ == "__main__":
    sys.exit(main())

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
            "--task", help="Preset: sst2, agnews, mrpc, rte, cola (sets columns, metric, hub id)."
        ),
        click.option(
            "--data", help="Hub dataset id, or a local file / folder with train.*, dev.*, test.*."
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
@click.option("--lr", type=float, help="Learning rate [default: 1e-3; LoRA+ 2.5e-4 (A's), VeRA 1e-2].")
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
    data, model, train_config = _settings(options)
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
@click.option("--trials", type=int, required=True, help="Trials to add to the study.")
@click.option("--timeout", "timeout_s", type=float, help="Stop starting trials after S seconds.")
@click.option("--storage", help="Optuna storage URL [default: sqlite:///lorasearch.db].")
@click.option("--study", "study_name", help="Study name; re-running with it resumes.")
@click.option("--sampler", default="tpe", show_default=True, help="tpe, nsga2, random or gp.")
@click.option("--variants", help="Comma-separated variants to search [default: all eight].")
@click.option("--space", "space_file", help="TOML/YAML file narrowing ranges or fixing knobs.")
@click.option("--max-params", type=int, help="Reject configurations with more trainable params.")
@click.option("--early-stop/--no-early-stop", default=True, show_default=True)
@click.option("--early-stop-margin", type=float, default=0.01, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def search(trials, timeout_s, storage, study_name, sampler, variants, space_file, max_params,
           early_stop, early_stop_margin, as_json, **options):  # fmt: skip
    """Search variant × hyperparameters: maximise the dev metric, minimise trainable params."""
    from lorasearch.search.study import Fixed, SearchConfig, run_search
    from lorasearch.spaces import SearchSpace, load_space_file

    chosen = [v.strip() for v in variants.split(",") if v.strip()] if variants else None
    space = load_space_file(space_file, chosen) if space_file else SearchSpace.default(chosen)
    config = SearchConfig(
        trials=trials, space=space, timeout_s=timeout_s, storage=storage, study_name=study_name,
        sampler=sampler, seed=options["seed"], early_stop=early_stop, margin=early_stop_margin,
        max_params=max_params,
    )  # fmt: skip
    fixed = Fixed(*_settings(options))
    with SearchBar(trials, fixed.train.steps) as bar:
        study = run_search(fixed, config, bar)
    _report(study, as_json)


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

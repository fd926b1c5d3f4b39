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
        click.option("--steps", type=int, default=300, show_default=True, help="Training steps."),
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
@click.option("--lr", type=float, help="Learning rate [default: 1e-3; VeRA 1e-2].")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Any variant knob.")
@click.option(
    "--export", "export_dir", type=click.Path(path_type=Path), help="Write the adapter here."
)
@click.option("--force", is_flag=True, help="Allow --export into a non-empty folder.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def train(variant, rank, alpha, dropout, lr, settings, export_dir, force, as_json, **options):
    """Train one adapter configuration and report its honest result."""
    from lorasearch.adapters import build_adapter, get_variant
    from lorasearch.training.trial import run_trial

    knobs = {
        k: v
        for k, v in dict(rank=rank, alpha=alpha, dropout=dropout, lr=lr).items()
        if v is not None
    }
    knobs |= parse_settings(settings, get_variant(variant).config_class)
    adapter = build_adapter(variant, **knobs)
    trial = _trial(options, adapter)
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


def _trial(options: dict, adapter):
    from lorasearch.training.trainer import TrainConfig
    from lorasearch.training.trial import DataConfig, ModelConfig, Trial

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
    return Trial(data=data, model=model, adapter=adapter, train=train_config)


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

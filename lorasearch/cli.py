"""The ``lorasearch`` command line: a thin client of the Python API (``lorasearch._api``).

Each command parses its options, calls the API and prints the result through one formatter
(``lorasearch._format``). User mistakes end as one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lorasearch import _api as api
from lorasearch import _options as opts
from lorasearch._format import show
from lorasearch.errors import LorasearchError
from lorasearch.search.samplers import DEFAULT_SAMPLER, SAMPLERS

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


# --- options shared by several commands ----------------------------------------------------------


def _apply(command, options):
    for option in reversed(options):
        command = option(command)
    return command


def storage_option(required: bool = False, help: str | None = None):
    return click.option(
        "--storage",
        required=required,
        help=help or "Optuna storage URL [default: sqlite:///lorasearch.db].",
    )


def study_option(required: bool = True, help: str = "Study name."):
    return click.option("--study", "study_name", required=required, help=help)


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object on stdout."
)
tracking_uri_option = click.option(
    "--tracking-uri",
    help="MLflow store [default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here].",
)
no_tracking_option = click.option(
    "--no-tracking", is_flag=True, help="Record in the Optuna study only, not MLflow."
)


def export_options(command):
    return _apply(command, [
        click.option("--export", "export_dir", type=click.Path(path_type=Path),
                     help="Write the adapter here."),
        click.option("--force", is_flag=True, help="Allow --export into a non-empty folder."),
    ])  # fmt: skip


device_option = click.option(
    "--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."
)
timeout_option = click.option(
    "--timeout", "timeout_s", type=float, help="Stop starting trials after S seconds."
)


def task_options(command):
    """Options that fix the task, model and training budget (shared by ``train`` and
    ``search``); the API's ``TaskOptions`` plus data, task, model and steps."""
    return _apply(command, [
        click.option("--task", multiple=True, help="Preset: sst2, agnews, mrpc, rte, cola (sets "
                     "columns, metric, hub id); search takes several."),
        click.option("--data", multiple=True, help="Hub dataset id, or a local file / folder with "
                     "train.*, dev.*, test.*; with several --task: one per task, or a folder "
                     "holding one folder per task."),
        click.option("--text-column", help="Column with the text."),
        click.option("--text-pair-column", help="Second text column, for sentence-pair tasks."),
        click.option("--label-column", help="Column with the label (ids or names)."),
        click.option("--metric", help="accuracy (default), macro_f1, f1 or mcc."),
        click.option("--train-samples", type=int, help="Use a seeded subsample of train."),
        click.option("--eval-samples", type=int,
                     help="Use a seeded subsample of dev (test stays whole)."),
        click.option("--model", help="Hub id or local folder; default: the bundled "
                     "all-MiniLM-L6-v2."),
        click.option("--targets", help="What to adapt: a group (all, ffn, attention, qv; fixes "
                     "the targets knob) or comma-separated module names [default: detected]."),
        click.option("--layers", help="Which blocks to adapt (fixes the layers knob): all, "
                     "top-K, top-1/N, every-N or indices like 0,2,5 [default: all]."),
        click.option("--trust-remote-code", is_flag=True, help="Allow the model's own code to run."),
        click.option("--steps", "--search-steps", "steps", type=int,
                     help="Training steps [default: 300]; in a search, the full budget R "
                     "(= --max-steps)."),
        click.option("--batch-size", type=int, default=32, show_default=True),
        click.option("--max-length", type=int, default=64, show_default=True,
                     help="Tokens per example."),
        click.option("--eval-every", type=int,
                     help="Dev evaluation interval in steps [default: steps/5]."),
        click.option("--warmup-ratio", type=float, default=0.06, show_default=True),
        click.option("--weight-decay", type=float, default=0.0, show_default=True),
        click.option("--group-by-length/--no-group-by-length", default=True, show_default=True,
                     help="Batch examples of similar length (less padding)."),
        click.option("--seed", type=int, default=0, show_default=True),
        device_option,
    ])  # fmt: skip


def count_options(command):
    """How many trials a search or worker runs, and its heartbeat."""
    return _apply(command, [
        click.option("--trials", type=int, help="Trials to add to the study."),
        click.option("--total-trials", type=int, help="Instead of --trials: run until the study "
                     "holds N ended trials (re-running completes it; workers sharing the study "
                     "split the N)."),
        click.option("--heartbeat", "heartbeat_s", type=float, default=30.0, show_default=True,
                     help="Seconds between a worker's heartbeats; a trial silent for two is "
                     "failed and retried."),
        timeout_option,
    ])  # fmt: skip


# --- commands ------------------------------------------------------------------------------------


@cli.command()
@task_options
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
@export_options
@json_option
def train(variant, rank, alpha, dropout, lr, settings, export_dir, force, as_json, **options):
    """Train one adapter configuration and report its honest result."""
    from lorasearch._options import parse_settings
    from lorasearch.adapters import get_variant

    knobs = dict(rank=rank, alpha=alpha, dropout=dropout, lr=lr)
    knobs = {k: v for k, v in knobs.items() if v is not None}
    knobs |= parse_settings(settings, get_variant(variant).config_class)
    if options["steps"] is None:
        del options["steps"]  # the API's default
    result = api.train(variant=variant, knobs=knobs, export_dir=export_dir, force=force,
                       progress=True, **options)  # fmt: skip
    show(result, as_json)


@cli.command()
@json_option
def variants(as_json):
    """List the adapter variants, their knobs with defaults, and where they may adapt."""
    from lorasearch.adapters import describe_variants

    table = describe_variants()
    if as_json:
        keys = ("knobs", "targets", "layers")
        show({name: {k: entry[k] for k in keys} for name, entry in table.items()}, True)
        return
    for name, entry in table.items():
        click.echo(f"{name:11s} {entry['description']}")
        click.echo(" " * 12 + ", ".join(f"{k}={v}" for k, v in entry["knobs"].items()))
        if entry["targets"]:
            click.echo(" " * 12 + f"targets: {' | '.join(entry['targets'])}; layers: "
                       f"{' | '.join(entry['layers'])} (or top-K, every-N, 0,2,5)")  # fmt: skip


@cli.command()
@task_options
@count_options
@storage_option()
@study_option(required=False, help="Study name; re-running with it resumes.")
@click.option(
    "--sampler",
    default=DEFAULT_SAMPLER,
    show_default=True,
    help=", ".join(SAMPLERS) + " (balanced: the variants in turn, each one's knobs by TPE).",
)
@click.option("--variants", help="Comma-separated variants to search [default: all].")
@click.option("--space", "space_file", help="TOML/YAML file narrowing ranges or fixing knobs.")
@click.option("--max-params", type=int, help="Reject configurations with more trainable params.")
@click.option("--early-stop/--no-early-stop", default=True, show_default=True)
@click.option("--early-stop-margin", type=float, default=0.01, show_default=True)
@click.option("--fidelity/--no-fidelity", default=True, show_default=True,
              help="Multi-fidelity: at each rung only the top 1/eta go on, the rest pause "
              "(a later promotion continues them); --no-fidelity trains every trial to R.")  # fmt: skip
@click.option("--max-steps", type=int, help="The full budget R [default: --steps, 300].")
@click.option("--min-steps", type=int, help="The lowest rung [default: R // 27, at least 5].")
@click.option("--initial-design/--no-initial-design", default=None,
              help="Start a new study with known-good recipes on a ladder of placements, from "
              "VeRA on one block's query/value to LoRA at rank 64 on every projection: a wider "
              "front [default: on].")  # fmt: skip
@click.option("--eta", type=int, default=3, show_default=True,
              help="Rungs at R/eta^k; the top ~1/eta at a rung go on.")  # fmt: skip
@click.option("--fidelity-signal", type=click.Choice(["dev_loss", "dev_metric"]),
              default="dev_loss", show_default=True,
              help="What ranks trials at the early rungs (dev cross-entropy or dev metric).")  # fmt: skip
@tracking_uri_option
@no_tracking_option
@json_option
def search(space_file, no_tracking, as_json, **options):
    """Search variant × hyperparameters: maximise the dev metric, minimise trainable params."""
    if not options["task"] and not options["data"]:  # (without them the API joins a study)
        raise LorasearchError("give --task NAME and/or --data PATH")
    reports = api.optimize(space=space_file, tracking=not no_tracking, progress=True, **options)
    if isinstance(reports, list):
        show(api.best_per_task(reports, options["storage"], options["max_params"]), as_json)
    else:
        show(reports, as_json)


@cli.command()
@study_option(help="The study to join.")
@storage_option(required=True, help="Its Optuna storage URL (e.g. postgresql://...).")
@count_options
@device_option
@tracking_uri_option
@no_tracking_option
def worker(no_tracking, **options):
    """Join an existing study and run its trials: task, model, space and sampler come from it."""
    show(api.optimize(tracking=not no_tracking, progress=True, **options), False)


@cli.command()
@study_option()
@storage_option()
@json_option
def pareto(study_name, storage, as_json):
    """Print a study's trials and its Pareto front (dev metric vs trainable params)."""
    show(api.report(study_name, storage), as_json)


@cli.command()
@study_option()
@storage_option()
@click.option("--seeds", type=int, default=3, show_default=True, help="Seeds per configuration.")
@click.option("--steps", type=int, help="Training steps [default: the search's].")
@click.option(
    "--lr-scales",
    help="Also refit each at its searched learning rate times these (e.g. 0.5,2); "
    "the scale with the best mean dev is marked.",
)
@tracking_uri_option
@no_tracking_option
@json_option
def refit(study_name, storage, seeds, steps, lr_scales, tracking_uri, no_tracking, as_json):
    """Retrain each Pareto configuration with more steps and seeds: mean ± std on dev and test."""
    scales = opts.numbers("--lr-scales", lr_scales)
    result = api.refit(
        study_name, storage, seeds, steps, progress=True, lr_scales=scales,
        tracking_uri=tracking_uri, tracking=not no_tracking,
    )  # fmt: skip
    metric = None if as_json else api.report(study_name, storage).metric_name
    show(result, as_json, **({} if as_json else {"metric": metric}))


@cli.command()
@study_option()
@storage_option()
@click.option("--max-params", type=int, help="Trainable-parameter budget.")
@click.option(
    "--rule",
    type=click.Choice(["best", "knee"]),
    default="best",
    show_default=True,
    help="best: highest dev metric within the budget; knee: where more params stop paying.",
)
@click.option(
    "--by",
    type=click.Choice(["auto", "search", "refit"]),
    default="auto",
    show_default=True,
    help="Whose dev metric ranks: the search's, or the mean over the last `refit`'s seeds "
    "(auto: the refit when it covers every front configuration within the budget).",
)
@export_options
@click.option(
    "--register", is_flag=True, help="Register it in the MLflow Model Registry as 'best'."
)
@tracking_uri_option
@json_option
def best(as_json, **options):
    """Pick the front's adapter for a parameter budget, say why, export and register it."""
    show(api.pick(progress=not as_json, **options), as_json)


@cli.command()
@click.option(
    "--adapter",
    "adapter_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="An export folder (train --export, best --export).",
)
@click.option(
    "--input",
    "input_file",
    type=click.Path(path_type=Path),
    help="A .csv, .tsv, .json or .jsonl file; its rows come back with the prediction.",
)
@click.option(
    "--text", "texts", multiple=True, help="A text to classify, instead of --input (repeatable)."
)
@click.option(
    "--text-pair",
    "text_pairs",
    multiple=True,
    help="The second text of each --text, for a sentence-pair adapter.",
)
@click.option("--text-column", help="Column with the text [default: the adapter's].")
@click.option("--text-pair-column", help="Second text column [default: the adapter's].")
@click.option(
    "--output",
    "output_file",
    type=click.Path(path_type=Path),
    help="Write here, in its extension's format [default: stdout, the input's format].",
)
@click.option(
    "--batch-size",
    type=int,
    default=128,
    show_default=True,
    help="Examples per forward pass (batched by token length).",
)
@click.option("--probabilities", is_flag=True, help="Add a probability_<label> column per label.")
@click.option(
    "--json", "as_json", is_flag=True, help="JSON Lines on stdout: one object per text or row."
)
@device_option
def predict(adapter_dir, input_file, texts, text_pairs, output_file, as_json, **options):
    """Classify texts with an exported adapter: label names (and probabilities) per text/row."""
    from lorasearch import _predict
    from lorasearch._progress import predict_bar

    if (input_file is None) == (not texts):
        raise LorasearchError("give --input FILE or --text TEXT (one of them)")
    if input_file is None:
        given = {"--text-column": options.pop("text_column"), "--output": output_file,
                 "--text-pair-column": options.pop("text_pair_column")}  # fmt: skip
        for flag, value in given.items():
            if value is not None:
                raise LorasearchError(f"{flag} goes with --input")
        click.echo(
            _predict.predict_texts(adapter_dir, texts, text_pairs, as_json=as_json, **options),
            nl=False,
        )
        return
    if text_pairs:
        raise LorasearchError("--text-pair goes with --text")
    text = _predict.predict_file(adapter_dir, input_file, output_file, as_json=as_json,
                                 progress=predict_bar, **options)  # fmt: skip
    if text is not None:
        click.echo(text, nl=False)


@cli.command()
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind address (local only).")
@tracking_uri_option
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


if __name__ == "__main__":
    sys.exit(main())

"""The CLI's one output step: a result as one JSON object, or as a table for a person.

JSON is ``dataclasses.asdict`` of the API's result (or the dict itself); tables are drawn by
rich, 200 columns wide when stdout is not a terminal (a file or pipe: no folding to 80).
"""

from __future__ import annotations

import dataclasses
import json

import click

from lorasearch._progress import knob_text


def show(result, as_json: bool, **context) -> None:
    """Print ``result`` (a TrainResult, SearchReport, RefitReport, Pick, or the several-task
    dict) as JSON or as its table; ``context`` carries what a table needs beyond the JSON."""
    if as_json:
        if hasattr(result, "to_json"):
            plain = result.to_json()
        else:
            plain = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result
        click.echo(json.dumps(plain))
        return
    render = {
        "TrainResult": _train, "SearchReport": _report, "RefitReport": _refit, "Pick": _pick,
        "dict": _tasks,
    }[type(result).__name__]  # fmt: skip
    render(result, **context)


def _table(title: str, columns: list[str], rows: list[list[str]], header: bool = True) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=header)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)


def _train(result) -> None:
    metric = result.metric_name
    rows = [
        ["hyperparameters", json.dumps(result.hyperparameters)],
        [f"dev {metric} (best, step {result.best_step})", f"{result.dev_metric:.4f}"],
        [f"test {metric}", f"{result.test_metric:.4f}"],
        ["trainable params (adapter + head)",
         f"{result.trainable_params:,} ({result.adapter_params:,} + {result.head_params:,})"],
        ["stored params (export)", f"{result.stored_params:,}"],
        ["steps", f"{result.steps} ({result.steps_per_second:.2f} steps/s, "
                  f"{result.tokens_per_second:,.0f} tokens/s)"],
        ["wall time", f"{result.wall_time_s:.1f} s"],
        ["peak memory", f"{result.peak_memory_mb:,.0f} MB on {result.device}"],
        ["labels", ", ".join(result.label_names)],
    ]  # fmt: skip
    if result.export_dir:
        rows.append(["exported to", result.export_dir])
    _table(f"{result.variant} — {metric}", ["", ""], rows, header=False)


def _report(report) -> None:
    metric = report.metric_name
    columns = [
        "#",
        "state",
        "variant",
        "hyperparameters",
        f"dev {metric}",
        "params",
        "steps",
        "note",
    ]
    rungs = any(t.rung is not None for t in report.trials)  # a multi-fidelity study
    if rungs:
        columns.insert(columns.index("steps") + 1, "rung")
    rows = []
    for t in report.trials:
        dev, params = t.values or (None, None)
        row = [
            f"{t.number}{'*' if t.pareto else ''}", t.state, t.variant or "", knob_text(t.params),
            f"{dev:.4f}" if dev is not None else "",
            f"{int(params):,}" if params is not None else "", str(t.steps_used), t.reason or "",
        ]  # fmt: skip
        if rungs:
            row.insert(columns.index("rung"), "" if t.rung is None else str(t.rung))
        rows.append(row)
    if report.refit is not None:
        _refit_column(
            report.refit, report.trials, columns.index(f"dev {metric}") + 1, columns, rows
        )
    _table(f"study {report.study}: dev {metric} vs trainable params (* = Pareto)", columns, rows)
    reference = report.reference_point
    click.echo(
        f"Pareto front: trials {report.pareto}; hypervolume {report.hypervolume:.4f} "
        f"(reference: {metric} {reference['metric']:.4f}, "
        f"log10 params {reference['log10_params']:.2f}); "
        f"training steps used {report.steps_used:,}"
    )
    if report.refit is not None:
        refit = report.refit
        steps = f"{refit['steps']:,} steps" if refit["steps"] else "the search's budget"
        early = "" if refit["finished"] else ", stopped early"
        click.echo(f"refit: {refit['seeds']} seed(s) at {steps}{early}; `best` ranks by it")


def _refit_column(refit: dict, trials, at: int, columns: list[str], rows: list[list[str]]) -> None:
    """A "refit dev" column at ``at``: each trial's picked rate scale's mean ± std."""
    picked = {c["number"]: c for c in refit["configs"] if c["picked"]}
    columns.insert(at, "refit dev (seeds)")
    for row, t in zip(rows, trials, strict=True):
        c = picked.get(t.number)
        text = f"{c['dev_mean']:.4f} ± {c['dev_std']:.4f} ({c['seeds']})" if c else ""
        row.insert(at, text + (at_rate(c["lr_scale"]) if c else ""))


def at_rate(scale: float) -> str:
    """ " at lr × k" for a refit at the searched rate times k; "" at the searched rate."""
    return f" at lr × {scale:g}" if scale != 1.0 else ""


def _refit(report, metric: str) -> None:
    first = report.refits[0] if report.refits else None
    seeds = first.seeds + len(first.failed) if first else 0
    scaled = any(r.lr_scale != 1.0 for r in report.refits)
    columns = ["#", "variant", "hyperparameters", f"search dev {metric}", "dev mean ± std",
               "test mean ± std", "trainable", "stored"]  # fmt: skip
    columns[3:3] = ["lr ×"] if scaled else []
    spread = lambda m, s: "failed" if m is None else f"{m:.4f} ± {s:.4f}"  # noqa: E731
    rows = [
        [str(r.number), r.variant, knob_text(r.params), f"{r.search_dev_metric:.4f}",
         spread(r.dev_mean, r.dev_std), spread(r.test_mean, r.test_std),
         f"{r.trainable_params:,}", "" if r.stored_params is None else f"{r.stored_params:,}"]
        for r in report.refits
    ]  # fmt: skip
    for row, r in zip(rows, report.refits, strict=True):
        row[3:3] = [f"{r.lr_scale:g}" + ("*" if r.picked else "")] if scaled else []
    title = f"study {report.study}: Pareto configurations refit over {seeds} seed(s)"
    _table(title, columns, rows)
    if scaled:
        click.echo("lr × = the searched learning rate times this; * = the best mean dev per trial")
    for r in report.refits:
        if r.failed:
            over = f"the means are over the other {r.seeds}" if r.seeds else "no seed trained"
            click.echo(
                f"trial {r.number}{at_rate(r.lr_scale)} ({r.variant}): {'; '.join(r.failed)} ({over})"
            )
    click.echo(f"kept in the study: `lorasearch best --study {report.study}` now ranks by it")


def _pick(pick) -> None:
    if pick.refit is None:
        numbers = f"dev {pick.metric_name} {pick.dev_metric:.4f}, test {pick.test_metric:.4f}"
    else:
        r = pick.refit
        numbers = (
            f"refit{at_rate(r['lr_scale'])} for {r['steps']:,} steps, "
            f"{r['seeds']} seed(s): dev {pick.metric_name} {pick.dev_metric:.4f} ± "
            f"{r['dev_std']:.4f}, test {pick.test_metric:.4f} ± {r['test_std']:.4f} "
            f"(search: dev {r['search_dev_metric']:.4f})"
        )
    click.echo(
        f"trial {pick.trial} ({pick.variant}, {knob_text(pick.hyperparameters)}): {numbers}, "
        f"{pick.trainable_params:,} trainable params; chosen as {pick.why}."
    )
    if pick.export_dir is not None:
        click.echo(f"exported to {pick.export_dir} ({pick.export_source}); see its README.md")
    if pick.registered_model is not None:
        click.echo(
            f"registered as {pick.registered_model} version {pick.registered_version}, alias 'best'"
        )


def _tasks(summary: dict) -> None:
    columns = ["study", "trial", "variant", "hyperparameters", "dev", "test", "params"]
    rows = []
    for row in summary["tasks"]:
        b = row["best"]
        if b is None:
            rows.append([row["study"], "", "", row["why"], "", "", ""])
            continue
        metric = row["metric_name"]
        rows.append([
            row["study"], str(b["trial"]), b["variant"], knob_text(b["hyperparameters"]),
            f"{metric} {b['dev_metric']:.4f}", f"{metric} {b['test_metric']:.4f}",
            f"{b['trainable_params']:,}",
        ])  # fmt: skip
    _table("best adapter per task (highest dev metric on the front)", columns, rows)

"""Progress on stderr: one bar for a training run, two for a search (the study and its trial),
one for a prediction.

Off a terminal (a pipe, a log file) or with ``LORASEARCH_QUIET=1`` the bars stay hidden and a
line is printed per dev evaluation (training) or per ended trial (search) instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def short(value) -> str:
    """A knob value as tables show it: floats to three significant digits."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def knob_text(knobs: dict) -> str:
    return ", ".join(f"{k}={short(v)}" for k, v in knobs.items())


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _console_and_quiet():
    from rich.console import Console

    console = Console(stderr=True)
    return console, os.environ.get("LORASEARCH_QUIET") == "1" or not console.is_terminal


@contextlib.contextmanager
def progress_bar(total: int, label: str) -> Iterator:
    """A bar with loss and dev metric; yields the trainer's ``progress`` callback."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console, quiet = _console_and_quiet()
    fields = {"loss": float("nan"), "dev": float("nan")}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  dev {task.fields[dev]:.4f}"),
        TimeElapsedColumn(), console=console, disable=quiet,
    ) as progress:  # fmt: skip
        bar = progress.add_task(label, total=total, **fields)

        def update(step: int, loss: float, dev: float | None = None) -> None:
            fields["loss"] = loss
            if dev is not None:
                fields["dev"] = dev
                if quiet:
                    _say(f"step {step}/{total}  loss {loss:.4f}  dev {dev:.4f}")
            progress.update(bar, completed=step, **fields)

        yield update


class SearchBar:
    """Two bars: the study (trials, best, hypervolume) and the running trial; the hooks
    ``run_search`` calls (``lorasearch.search.progress.SearchProgress``)."""

    def __init__(self, trials: int, steps: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        console, self.quiet = _console_and_quiet()
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

    def search_started(self, study, storage: str, space, schedule: str = "") -> None:
        from optuna.trial import TrialState

        # an initial design's or a promotion's waiting trials have not run yet
        done = sum(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))
        lines = [f"study {study.study_name} in {storage} ({done} trials so far); space in force:"]
        for variant, knobs in space.describe().items():
            lines.append(f"  {variant:11s} " + ", ".join(f"{k} {d}" for k, d in knobs.items()))
        if schedule:
            lines.append(schedule)
        self.progress.console.print("\n".join(lines), highlight=False, soft_wrap=True)

    def trial_started(self, number: int, variant: str, knobs: dict) -> None:
        text = f"#{number} {variant} {knob_text(knobs)}"
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
        from lorasearch.search.records import TrialRecord

        best_text = f"best {best:.4f}" if best is not None else "best -"
        self.progress.update(self.study_bar, advance=1, info=f"{best_text}  HV {hypervolume:.4f}")
        if self.quiet:
            record = TrialRecord.of(trial)
            values = (
                f"dev {record.values[0]:.4f}, {int(record.values[1]):,} params"
                if record.values
                else ""
            )
            _say(
                f"trial {record.number} {record.state} {record.variant or ''} {values} "
                f"{record.cause or ''}  |  {best_text}  HV {hypervolume:.4f}"
            )


@contextlib.contextmanager
def predict_bar(total: int) -> Iterator:
    """A bar over the examples predicted, on a terminal only (prediction prints no log lines);
    yields its ``update(done)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console, quiet = _console_and_quiet()
    with Progress(
        TextColumn("predict"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=quiet, transient=True,
    ) as progress:  # fmt: skip
        bar = progress.add_task("predict", total=total)
        yield lambda done: progress.update(bar, completed=done)

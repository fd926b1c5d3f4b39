"""Where a trial's rung checkpoint lives, and how a retried trial takes over its predecessor's.

With rungs (multi-fidelity), the trainer keeps the latest rung's checkpoint in a folder the
search owns (:mod:`lorasearch.training.checkpoint`), one folder per trial:

- SQLite storage: ``<db file>.checkpoints/<study>/<trial number>/`` beside the database, so the
  study and its checkpoints move together;
- any other storage (PostgreSQL, ...): ``$LORASEARCH_CACHE/checkpoints/<key>/<trial number>/``,
  ``key`` the first 12 hex digits of the SHA-1 of the masked URL and the study name.

A trial whose worker dies is failed after two heartbeats and retried once (Optuna's
``RetryHeartbeatStaleTrialCallback``: a new trial with the same parameters and the failed one's
user attrs). The retry first moves the failed trial's folder to its own (``os.replace``) and so
resumes from the last rung the failed trial passed; it starts with that trial's rung points,
and records ``resumed_from`` (the step). The folders are local files: a retry on a machine that
cannot see the failed trial's folder (another host, another cache) finds none and restarts
from step 0, as it did before checkpoints.

A trial that pauses at a rung (``search/promotion.py``) keeps its folder; the trial that a
later promotion enqueues to continue it takes the folder over as a retry does, and resumes from
that rung. Every other trial's folder is deleted when the trial ends (COMPLETE, PRUNED, or FAIL
by an exception or Ctrl-C, which Optuna does not retry), so a study's checkpoints grow only by
its paused trials (one adapter and its optimizer state each; deleting them costs a later
promotion its head start, nothing else). A kill skips that:
each trial's start sweeps the study's folder of trials that ended and will not be resumed (all
but a failed trial whose retry is waiting or running: a retry killed in its turn is not retried,
and a retry that ran on another machine left this one's folder behind).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from lorasearch.errors import first_line, mask_url, sqlite_path
from lorasearch.search import fidelity, recording
from lorasearch.search.records import CONTINUES, PAUSED, RUNG, RUNGS
from lorasearch.search.storage import storage_url
from lorasearch.training.checkpoint import FILE
from lorasearch.training.sources import cache_root

_RETRY = optuna.storages.RetryHeartbeatStaleTrialCallback
_ENDED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


@dataclass
class Resume:
    """A trial's checkpoint folder (None: no rungs, nothing to keep) and what it took over."""

    folder: Path | None
    retry_of: int | None = None  # the failed trial this one retries (the last, if several)
    adopted: bool = False  # a checkpoint of that trial was moved here: training resumes from it
    rung: int = 0  # the rung the failed (or paused) trial had reached
    points: dict[int, tuple[float, int]] = field(default_factory=dict)  # its rung points
    continues: int | None = None  # the paused trial this promotion continues
    keep: bool = False  # the trial paused: its folder stays for a later promotion

    @property
    def passed(self) -> int:
        """The last rung step a continuation's predecessor passed (not judged again)."""
        return max(self.points, default=0) if self.continues is not None else 0


def study_root(storage: str | None, study: str) -> Path:
    """The folder holding a study's trial checkpoint folders (see the module docstring)."""
    url = storage_url(storage)
    path = sqlite_path(url)
    if path and path != ":memory:":
        return Path(f"{path}.checkpoints") / re.sub(r"[^\w.-]", "_", study)
    key = hashlib.sha1(f"{mask_url(url)}\n{study}".encode()).hexdigest()[:12]
    return cache_root() / "checkpoints" / key


@contextlib.contextmanager
def trial_checkpoint(
    study: optuna.Study, trial: optuna.Trial, storage: str | None, enabled: bool, warn=print
) -> Iterator[Resume]:
    """The trial's :class:`Resume`, its folder deleted when the trial ends however it ends (a
    kill skips this: the retry, or a later sweep, takes care of the folder). A folder that
    cannot be made is said through ``warn``, and the trial runs without a checkpoint."""
    if not enabled:
        yield Resume(None)
        return
    root = study_root(storage, study.study_name)
    trials = study.get_trials(deepcopy=False)
    try:
        _sweep(trials, root)
        resume = _adopt(root, next(t for t in trials if t.number == trial.number))
    except OSError as exc:  # an unwritable cache costs the resume, not the trial
        warn(f"trial {trial.number} keeps no rung checkpoint: {first_line(exc)}")
        resume = Resume(None)
    try:
        yield resume
    finally:
        if resume.folder is not None and not resume.keep:
            shutil.rmtree(resume.folder, ignore_errors=True)


def record_start(trial: optuna.Trial, resume: Resume) -> None:
    """A trial's rung as it starts: 0, or for a retry that resumes, the failed trial's rung and
    points (which came with the retry's attrs, as its ``resumed_from`` did: cleared here)."""
    retry = resume.retry_of is not None
    if retry or resume.continues is not None:
        recording.record_resumed(trial, 0)
    if not resume.adopted and resume.continues is None:  # a continuation keeps its rungs
        recording.record_rung(trial, 0, {} if retry else None)


def record_end(
    trial: optuna.Trial, resume: Resume, result, rungs: tuple[int, ...], params: int, signal: str
) -> None:
    """A retry's rungs rebuilt from its curve (a resumed run's includes the points restored from
    the checkpoint, so the record holds exactly the rungs it passed), and where it resumed."""
    if resume.retry_of is not None or resume.continues is not None:
        recording.record_rung(
            trial, *rung_record(result.curve, rungs, result.steps, params, signal)
        )
        recording.record_resumed(trial, result.resumed_from)


def rung_record(
    curve, rungs: tuple[int, ...], steps: int, params: int, signal: str
) -> tuple[int, dict[int, tuple[float, int]]]:
    """``(rung reached, points)`` of a trained run from its curve: what the gate records."""
    points = {
        p.step: (fidelity.signal_of(p, signal), params) for p in curve if p.step in rungs[:-1]
    }
    if steps >= rungs[-1]:
        return len(rungs), points
    return max((rungs.index(step) + 1 for step in points), default=0), points


def _adopt(root: Path, trial: FrozenTrial) -> Resume:
    """Move the folder of the trial this one retries or continues (if any, and still here) to
    this one's."""
    folder = root / str(trial.number)
    history = _RETRY.retry_history(trial)
    failed = history[-1] if history else None
    continues = trial.user_attrs.get(CONTINUES)
    before = failed if failed is not None else continues
    source = root / str(before) if before is not None else None
    adopted = False
    if source is not None and (source / FILE).is_file():  # (a kill mid-write leaves a .tmp)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(folder, ignore_errors=True)  # nothing should be there: a new trial
        source.replace(folder)
        adopted = True
    folder.mkdir(parents=True, exist_ok=True)
    if not adopted and continues is None:
        return Resume(folder, failed)
    attrs = trial.user_attrs  # the predecessor's, copied by the retry callback or the promotion
    points = {int(step): (float(v[0]), int(v[1])) for step, v in attrs.get(RUNGS, {}).items()}
    return Resume(folder, failed, adopted, int(attrs.get(RUNG, 0)), points, continues)


def _sweep(trials: list[FrozenTrial], root: Path) -> None:
    """Delete the folders of trials that ended and will not be resumed (see the docstring)."""
    if not root.is_dir():
        return
    by_number = {t.number: t for t in trials}
    pending = {  # failed trials whose retry is yet to start, or running (it may be taking over)
        history[-1]
        for t in trials
        if t.state in (TrialState.WAITING, TrialState.RUNNING)
        and (history := _RETRY.retry_history(t))
    }
    continued = {  # by a promotion that has run (it took the folder if it could)
        t.user_attrs[CONTINUES] for t in trials if CONTINUES in t.user_attrs and t.state in _ENDED
    }
    for folder in root.iterdir():
        trial = by_number.get(int(folder.name)) if folder.name.isdigit() else None
        if trial is None or trial.state not in _ENDED or trial.number in pending:
            continue
        if PAUSED in trial.user_attrs and trial.number not in continued:
            continue  # a paused trial a later promotion may continue
        shutil.rmtree(folder, ignore_errors=True)

"""What the search asks of experiment tracking, and the two answers: MLflow, or nothing.

The search calls a :class:`Tracking` and never knows which; :func:`make_tracking` is the one
place a tracking URI is checked (a malformed one is the user's error, raised before anything is
written), and every implementation keeps tracking a record, never a dependency of the search.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from lorasearch.errors import LorasearchError

if TYPE_CHECKING:
    import optuna

    from lorasearch.search.records import TrialRecord
    from lorasearch.search.refit import Refit
    from lorasearch.training.trainer import TrainResult


@runtime_checkable
class Tracking(Protocol):
    """The calls a search makes, in order: ``start_study``; per trial ``start_trial``,
    ``trial_config``, ``step``/``evaluation``, ``log_adapter``, ``finish_trial`` and
    ``update_study``; ``close_abandoned`` whenever trials may have been left behind; and
    ``end_study``. ``download_adapter`` serves the export of a chosen trial; ``log_refit``
    records one seed of a refit (``lorasearch refit``) beside the study's trials."""

    @property
    def active(self) -> bool:
        """Whether trials are being recorded (False when off, or after a failure)."""

    def start_study(self, study: optuna.Study, params: dict[str, Any], tags: dict[str, str]): ...

    def start_trial(self, number: int, study_name: str) -> str | None:
        """A record for trial ``number``; returns its run id (kept on the trial), or None."""

    def trial_config(self, run_id: str | None, variant: str, knobs: dict, settings: dict): ...

    def step(self, step: int, loss: float) -> None: ...

    def evaluation(
        self, run_id: str | None, step: int, dev: float, dev_loss: float | None = None
    ) -> None: ...

    def log_adapter(self, run_id: str | None, directory: Path) -> None: ...

    def finish_trial(self, trial: TrialRecord) -> None: ...

    def close_abandoned(self, study: optuna.Study) -> None: ...

    def update_study(
        self,
        finished: int,
        hypervolume: float,
        front_runs: dict[int, str],
        all_runs: dict[int, str],
        plots: Callable[[Path], None],
    ) -> None: ...

    def end_study(self, interrupted: bool = False) -> None: ...

    def download_adapter(self, run_id: str, destination: Path) -> bool: ...

    def check_run(self, run_id: str, what: str) -> None:
        """Raise :class:`LorasearchError` unless ``run_id`` (``what``'s run) is in this store."""

    def log_refit(
        self,
        study: optuna.Study,
        refit: Refit,
        seed: int,
        result: TrainResult | None,
        why: str | None = None,
    ) -> str | None:
        """One refit seed: its result, or (``result`` None) why it did not train; returns its
        run's id (None: not recorded)."""


class NoTracking:
    """Tracking off: every call does nothing; the Optuna study keeps the full record."""

    active = False

    def start_study(self, study, params, tags) -> None: ...

    def start_trial(self, number: int, study_name: str) -> None:
        return None

    def trial_config(self, run_id, variant, knobs, settings) -> None: ...

    def step(self, step: int, loss: float) -> None: ...

    def evaluation(self, run_id, step: int, dev: float, dev_loss=None) -> None: ...

    def log_adapter(self, run_id, directory: Path) -> None: ...

    def finish_trial(self, trial) -> None: ...

    def close_abandoned(self, study) -> None: ...

    def update_study(self, finished, hypervolume, front_runs, all_runs, plots) -> None: ...

    def end_study(self, interrupted: bool = False) -> None: ...

    def download_adapter(self, run_id: str, destination: Path) -> bool:
        return False

    def check_run(self, run_id: str, what: str) -> None:
        raise LorasearchError(f"{what} cannot be registered: tracking is off")

    def log_refit(self, study, refit, seed: int, result, why=None) -> None:
        return None


def make_tracking(
    uri: str | None, enabled: bool = True, warn: Callable[[str], None] | None = None
) -> Tracking:
    """MLflow at ``uri`` (None: $MLFLOW_TRACKING_URI, else ``sqlite:///mlflow.db`` here), or
    :class:`NoTracking` when not ``enabled``. A malformed URI raises :class:`LorasearchError`;
    nothing is opened until the search starts. ``warn`` hears a tracking failure, once (default:
    a line on stderr)."""
    if not enabled:
        return NoTracking()
    from lorasearch.tracking.runs import MlflowTracking

    return MlflowTracking(uri, warn=warn)

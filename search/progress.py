"""The hooks a front end implements to show a search's progress (all optional)."""

from __future__ import annotations

import sys

import optuna
from optuna.trial import FrozenTrial

from lorasearch.spaces import SearchSpace


class SearchProgress:
    """Does nothing but say warnings on stderr; a front end overrides what it shows."""

    def search_started(
        self, study: optuna.Study, storage: str, space: SearchSpace, schedule: str = ""
    ) -> None:
        """``schedule``: ``SearchConfig.schedule``'s line (the rungs)."""

    def trial_started(self, number: int, variant: str, knobs: dict) -> None: ...

    def trial_step(self, step: int, loss: float, dev: float | None = None) -> None: ...

    def trial_ended(self, trial: FrozenTrial, hypervolume: float, best: float | None) -> None:
        """``trial`` as Optuna ended it; ``TrialRecord.of(trial)`` reads what lorasearch kept."""

    def warning(self, message: str) -> None:
        print(f"lorasearch: warning: {message}", file=sys.stderr)

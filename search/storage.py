"""Where studies live: Optuna's relational storage, opened with heartbeats and retries."""

from __future__ import annotations

import time
from pathlib import Path

import optuna

from lorasearch.errors import LorasearchError, first_line, mask_url, sqlite_path
from lorasearch.search import records
from lorasearch.search.config import Fixed

DEFAULT_STORAGE = "sqlite:///lorasearch.db"


def storage_url(storage: str | None) -> str:
    return storage or DEFAULT_STORAGE


def open_storage(url: str, heartbeat_s: float | None = None) -> optuna.storages.BaseStorage:
    """Optuna's relational storage; with ``heartbeat_s``, a trial whose worker stops beating for
    two intervals is failed by the next worker, and its configuration retried once."""
    if "://" not in url:
        raise LorasearchError(
            f"malformed --storage '{mask_url(url)}' (expected e.g. sqlite:///file.db)"
        )
    beat = {}
    if heartbeat_s is not None:
        beat = {
            "heartbeat_interval": max(1, round(heartbeat_s)),
            "grace_period": max(2, round(2 * heartbeat_s)),
            "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=1
            ),
        }
    for attempt in range(6):  # two workers creating the tables at once: the loser retries
        try:
            return optuna.storages.RDBStorage(url, **beat)
        except Exception as exc:  # sqlalchemy raises many types; the URL is what one can fix
            if attempt < 5 and _creation_race(exc):
                time.sleep(0.5 + attempt)
                continue
            raise LorasearchError(
                f"cannot open storage {mask_url(url)}: {mask_url(first_line(exc))}"
            ) from None
    raise AssertionError("unreachable")


def _creation_race(exc: Exception) -> bool:
    """Another worker is creating the same tables right now (the only error worth a retry)."""
    text = str(exc).lower()
    return any(
        marker in text
        for marker in ("already exists", "duplicate", "uniqueviolation", "table schema")
    )


def default_study_name(fixed: Fixed) -> str:
    base = fixed.data.task or Path(fixed.data.data or "custom").stem
    model = Path(fixed.model.model).name if fixed.model.model else "minilm"
    return f"{base}-{model}"


def load_study(name: str, storage: str | None) -> optuna.Study:
    """An existing lorasearch study (for ``pareto``, ``refit``, ``best``); never creates a
    storage."""
    url = storage_url(storage)
    path = sqlite_path(url)
    if path is not None and not Path(path).is_file():
        raise LorasearchError(f"no study '{name}': no storage file {path}")
    backend = open_storage(url)
    names = optuna.get_all_study_names(backend)
    if name not in names:
        known = ", ".join(names) or "none"
        raise LorasearchError(f"no study '{name}' in {mask_url(url)} (studies: {known})")
    study = optuna.load_study(study_name=name, storage=backend)
    records.check_lorasearch(study)
    return study

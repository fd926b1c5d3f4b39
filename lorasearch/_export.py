"""Picking a study's configuration for a budget, and exporting and registering it.

The export is built in a scratch folder and moved into place only when complete: a failure never
leaves a half-written export, nor destroys what ``force`` would replace. Its adapter is the
search's own (the trial's MLflow artifact) or, when none was stored, the trial trained again with
the search's seed and budget.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from lorasearch._results import Pick
from lorasearch.errors import LorasearchError

FROM_MLFLOW = "the search's trained adapter (MLflow artifact)"
RETRAINED = "retrained with the search's seed and budget"


def chosen(study, max_params: int | None = None, rule: str = "best") -> tuple[Pick, object]:
    """The front's configuration for ``max_params`` under ``rule``, as a :class:`Pick` with
    nothing exported yet, and the trial record it came from."""
    from lorasearch.search.records import StudyRecord
    from lorasearch.search.select import choose

    choice = choose(study, max_params, rule)
    trial = choice.trial
    pick = Pick(
        study=study.study_name,
        trial=trial.number,
        variant=trial.variant,
        hyperparameters=trial.knobs,
        metric_name=StudyRecord.of(study).metric_name,
        dev_metric=trial.values[0],
        test_metric=trial.test_metric,
        trainable_params=int(trial.values[1]),
        stored_params=trial.stored_params,
        rule=rule,
        why=choice.why,
        mlflow_run_id=trial.run_id,
    )
    return pick, trial


def export(
    study, pick: Pick, trial, tracking, export_dir: Path | None, register: bool, say
) -> None:
    """Write ``pick``'s adapter, ``lorasearch.json`` and model card into ``export_dir`` and/or
    register it in the MLflow Model Registry; records where it came from on ``pick``."""
    from lorasearch.search.select import retrain
    from lorasearch.tracking.card import write_model_card

    if register and not pick.mlflow_run_id:  # said before anything is trained or written
        raise LorasearchError(
            f"trial {pick.trial} has no MLflow run to register from "
            "(the search ran with --no-tracking or MLflow was down)"
        )
    with tempfile.TemporaryDirectory(prefix="lorasearch-export-") as scratch:
        target = Path(scratch) / (export_dir.name if export_dir else "adapter")
        if pick.mlflow_run_id and tracking.download_adapter(pick.mlflow_run_id, target):
            pick.export_source = FROM_MLFLOW
        else:
            say("no stored adapter for this trial: retraining it as the search did")
            pick.test_metric_retrained = retrain(study, trial, target).test_metric
            pick.export_source = RETRAINED
        write_model_card(target, study=pick.study, trial=pick.trial, why=pick.why)
        if register:  # first: it may store the complete folder on the run
            name = f"lorasearch-{pick.study}"
            pick.registered_version = tracking.register(pick.mlflow_run_id, name, target, pick.why)
            pick.registered_model = name
        if export_dir is not None:
            move_into(target, export_dir)
            pick.export_dir = str(export_dir)


def move_into(source: Path, destination: Path) -> None:
    """Replace ``destination``'s contents with ``source``'s (the caller checked ``force``)."""
    destination.mkdir(parents=True, exist_ok=True)
    for item in destination.iterdir():
        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
    for item in source.iterdir():
        shutil.move(str(item), destination / item.name)


def say_on_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)

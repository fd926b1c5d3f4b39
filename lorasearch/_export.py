"""Picking a study's configuration for a budget, and exporting and registering it.

The export is built in a scratch folder and moved into place only when complete: a failure never
leaves a half-written export, nor destroys what ``force`` would replace. Its adapter is the
search's own (the trial's MLflow artifact) or, when none was stored, the trial trained again with
the search's seed and budget; a configuration chosen by its refit is trained again as its refit
seed with the best dev was (that budget, rate and seed).
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


def chosen(
    study, max_params: int | None = None, rule: str = "best", by: str = "auto"
) -> tuple[Pick, object]:
    """The front's configuration for ``max_params`` under ``rule``, chosen ``by`` the search
    or its refit, as a :class:`Pick` with nothing exported yet, and the choice it came from."""
    from lorasearch.search.records import StudyRecord
    from lorasearch.search.select import choose

    choice = choose(study, max_params, rule, by)
    trial, config = choice.trial, choice.refit
    record = StudyRecord.of(study)
    pick = Pick(
        study=study.study_name,
        trial=trial.number,
        variant=trial.variant,
        hyperparameters=trial.knobs if config is None else config.knobs,
        metric_name=record.metric_name,
        dev_metric=trial.values[0] if config is None else config.dev_mean,
        test_metric=trial.test_metric if config is None else config.test_mean,
        trainable_params=int(trial.values[1]),
        stored_params=trial.stored_params,
        rule=rule,
        why=choice.why,
        mlflow_run_id=trial.run_id if config is None else config.best_seed.run_id,
        by=choice.by,
    )
    if config is not None:
        seed = config.best_seed
        pick.refit = {
            "steps": choice.refit_steps or record.fixed.train.steps,
            "seeds": len(config.seeds), "lr_scale": config.lr_scale,
            "dev_std": config.spread("dev_metric"), "test_std": config.spread("test_metric"),
            "search_dev_metric": trial.values[0], "search_test_metric": trial.test_metric,
            "export_seed": seed.seed, "export_seed_dev_metric": seed.dev_metric,
            "export_seed_test_metric": seed.test_metric,
        }  # fmt: skip
    return pick, choice


def export(
    study, pick: Pick, choice, tracking, export_dir: Path | None, register: bool, say
) -> None:
    """Write ``pick``'s adapter, ``lorasearch.json`` and model card into ``export_dir`` and/or
    register it in the MLflow Model Registry; records where it came from on ``pick``."""
    from lorasearch.search.select import retrain
    from lorasearch.tracking.card import write_model_card

    source = f"trial {pick.trial}" + (" refit seed" if pick.refit is not None else "")
    if register and not pick.mlflow_run_id:  # said before anything is trained or written
        raise LorasearchError(
            f"{source} has no MLflow run to register from "
            f"(the {'refit' if pick.refit else 'search'} ran with --no-tracking or MLflow was down)"
        )
    if register:
        tracking.check_run(pick.mlflow_run_id, source)
    with tempfile.TemporaryDirectory(prefix="lorasearch-export-") as scratch:
        target = Path(scratch) / (export_dir.name if export_dir else "adapter")
        if pick.refit is not None:  # refit seeds keep no adapter: that seed is trained again
            seed = pick.refit["export_seed"]
            say(f"retraining trial {pick.trial} as its refit seed {seed} (the best dev) trained")
            pick.test_metric_retrained = retrain(study, choice, target).test_metric
            pick.export_source = f"retrained as refit seed {seed}: its budget, rate and seed"
        elif pick.mlflow_run_id and tracking.download_adapter(pick.mlflow_run_id, target):
            pick.export_source = FROM_MLFLOW
        else:
            say("no stored adapter for this trial: retraining it as the search did")
            pick.test_metric_retrained = retrain(study, choice, target).test_metric
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

"""MLflow runs for a study: one parent per study, one nested child per trial and per refit seed.

Every MLflow call of the project goes through :class:`MlflowTracking` (the search's
:class:`~lorasearch.tracking.base.Tracking`). Tracking is a record, never a dependency: when
MLflow fails (server down, disk full) the error is said once, tracking switches off for the rest
of the process, and training and the Optuna study go on untouched.

The parent run's id is kept on the Optuna study (``StudyRecord.parent_run_id``), so trials from
any worker on any machine nest under the same parent. Two workers starting at once may both
create a parent; each then keeps the oldest and deletes its own, so they converge on one.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lorasearch.errors import LorasearchError, first_line, mask_url, sqlite_path

if TYPE_CHECKING:
    from lorasearch.search.records import TrialRecord
    from lorasearch.search.refit import Refit
    from lorasearch.training.trainer import TrainResult

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks")
ADAPTER_PATH = "adapter"
_MAX_BATCH = 1000  # MLflow's limit on metrics per log_batch
PLOT_INTERVAL_S = 30.0  # the Pareto plot is re-drawn at most this often, and when a search ends
PLOT_SHARE = 0.01  # ... and less often if drawing would take more than this share of the wall time


def tracking_uri(uri: str | None) -> str:
    """The tracking URI in force: ``uri``, else $MLFLOW_TRACKING_URI, else ``mlflow.db`` here.

    A malformed URI is the user's error (exit 2), not a tracking failure."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme not in SCHEMES:
        raise LorasearchError(
            f"malformed --tracking-uri '{mask_url(uri)}' "
            "(expected e.g. sqlite:///mlflow.db, http://127.0.0.1:5000 or postgresql://...)"
        )
    if scheme == "sqlite" and not uri.startswith("sqlite:///"):
        raise LorasearchError(f"malformed --tracking-uri '{mask_url(uri)}' (use sqlite:///path.db)")
    return uri


def artifact_root(uri: str) -> str | None:
    """Artifacts beside a local SQLite store (``mlartifacts/`` next to the file); else the
    server's default."""
    path = sqlite_path(uri)
    return (Path(path).resolve().parent / "mlartifacts").as_uri() if path is not None else None


def serve_command(uri: str | None, host: str, port: int) -> list[str]:
    """The ``mlflow ui`` command line serving a local store (SQLite or file)."""
    import sys

    uri = tracking_uri(uri)
    if uri.split(":", 1)[0] in ("http", "https", "databricks"):
        raise LorasearchError(f"{mask_url(uri)} is a server already: open it in a browser")
    path = sqlite_path(uri)
    if path is not None and not Path(path).exists():
        raise LorasearchError(f"no MLflow store at {uri} (run a search here first)")
    if not 0 < port < 65536:
        raise LorasearchError(f"--port must be in 1..65535, got {port}")
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    root = artifact_root(uri)
    if root:
        command += ["--default-artifact-root", root]
    return command + ["--host", host, "--port", str(port)]


class MlflowTracking:
    """Records a study in MLflow; every public method is safe to call when tracking is off."""

    def __init__(self, uri: str | None = None, warn: Callable[[str], None] | None = None):
        self.uri = tracking_uri(uri)
        self.warn = warn or _say
        self.failed: str | None = None  # the first MLflow error, once said
        self._client = None
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self.metric_name = "metric"
        self._buffer: list = []
        self._pending_plots: Callable[[Path], None] | None = None
        self._plotted_at = -math.inf
        self._plot_interval = PLOT_INTERVAL_S

    # --- plumbing ---------------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            # An http server that is down must fail fast, not retry for minutes per call.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    @property
    def active(self) -> bool:
        return self.failed is None and self.parent_id is not None

    def _guard(self, what: str, call: Callable[[], Any]) -> Any:
        """Run one MLflow operation; the first failure is said once and turns tracking off."""
        if self.failed is not None:
            return None
        try:
            return call()
        except Exception as exc:  # any MLflow/HTTP/DB error: tracking is not worth a trial
            self.failed = f"{what}: {mask_url(first_line(exc, 300))}"
            self.warn(
                f"MLflow tracking at {mask_url(self.uri)} failed ({self.failed}); "
                "training goes on, the Optuna study keeps the full record"
            )
            return None

    # --- the study (parent run) -------------------------------------------------------------------

    def start_study(self, study, params: dict[str, Any], tags: dict[str, str]) -> None:
        """Find or create the study's experiment and parent run; close runs left RUNNING."""
        from lorasearch.search import records

        self.metric_name = records.metric_name(study) or "metric"
        self._guard("opening the experiment", lambda: self._open_experiment(study.study_name))
        self._guard("opening the study's run", lambda: self._open_parent(study, params, tags))
        self._guard("closing abandoned runs", lambda: self.close_abandoned(study))

    def _open_experiment(self, name: str) -> None:
        from mlflow.exceptions import MlflowException

        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                root = artifact_root(self.uri)
                self.experiment_id = self.client.create_experiment(
                    name,
                    artifact_location=f"{root}/{name}" if root else None,
                    # MLflow 3's UI then opens the training-runs view, not the GenAI one.
                    tags={"mlflow.experimentKind": "custom_model_development"},
                )
                return
            except MlflowException:  # another worker created it first
                experiment = self.client.get_experiment_by_name(name)
        if experiment.lifecycle_stage == "deleted":
            self.client.restore_experiment(experiment.experiment_id)
        self.experiment_id = experiment.experiment_id

    def _open_parent(self, study, params: dict[str, Any], tags: dict[str, str]) -> None:
        from mlflow.entities import Param, RunTag
        from mlflow.exceptions import MlflowException

        from lorasearch.search import records

        known = records.parent_run_id(study)
        if known and self._run_exists(known):
            self.parent_id = known
        else:
            mine = self.client.create_run(
                self.experiment_id,
                run_name=study.study_name,
                tags={"lorasearch.role": "study", "lorasearch.study": study.study_name},
            ).info.run_id
            parents = self.client.search_runs(
                [self.experiment_id],
                filter_string="tags.`lorasearch.role` = 'study' and "
                f"tags.`lorasearch.study` = '{study.study_name}'",
                order_by=["attributes.start_time ASC"],
            )
            oldest = min(parents, key=lambda r: (r.info.start_time, r.info.run_id)).info.run_id
            if oldest != mine:
                self.client.delete_run(mine)
            self.parent_id = oldest
            records.set_parent_run_id(study, oldest)
        self.client.update_run(self.parent_id, status="RUNNING")  # a resumed study runs again
        self.client.log_batch(self.parent_id, tags=[RunTag(k, _text(v)) for k, v in tags.items()])
        # Workers starting together may both find a param missing and both insert it: the loser's
        # insert fails on the unique key, so it reads the params again and logs only what is left.
        for attempt in range(3):
            existing = self.client.get_run(self.parent_id).data.params
            new = [Param(k, _text(v)) for k, v in params.items() if k not in existing]
            if not new:
                return
            try:
                self.client.log_batch(self.parent_id, params=new)
                return
            except MlflowException:
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def _run_exists(self, run_id: str) -> bool:
        run = self._active_run(run_id)
        return run is not None and run.info.experiment_id == self.experiment_id

    def _active_run(self, run_id: str):
        """The run, if this store holds it and it is not deleted; else None."""
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            return None
        return run if run.info.lifecycle_stage == "active" else None

    def close_abandoned(self, study) -> None:
        """Runs still RUNNING whose trial Optuna has already ended (a killed worker's) are
        closed with the trial's state, so nothing is left RUNNING forever."""
        from lorasearch.search.records import trial_records

        if self.parent_id is None:
            return
        ended = {t.run_id: t for t in trial_records(study) if t.finished and t.run_id}
        running = self.client.search_runs(
            [self.experiment_id], filter_string="attributes.status = 'RUNNING'"
        )
        for run in running:
            if run.info.run_id in ended:
                self.finish_trial(ended[run.info.run_id])

    def end_study(self, interrupted: bool = False) -> None:
        """This worker is done: the plots brought up to date, the parent FINISHED (KILLED on
        Ctrl-C) until resumed."""
        self._draw()
        if self.active:
            self._guard(
                "closing the study's run",
                lambda: self.client.set_terminated(
                    self.parent_id, "KILLED" if interrupted else "FINISHED"
                ),
            )

    # --- a trial (child run) ----------------------------------------------------------------------

    def start_trial(self, number: int, study_name: str) -> str | None:
        """A child run for trial ``number``; the caller keeps its id on the trial."""
        if not self.active:
            return None
        run = self._guard(
            "starting a trial run",
            lambda: self.client.create_run(
                self.experiment_id,
                run_name=f"trial-{number}",
                tags={
                    "mlflow.parentRunId": self.parent_id,
                    "lorasearch.role": "trial",
                    "lorasearch.study": study_name,
                    "trial": str(number),
                    "state": "RUNNING",
                    "pareto": "false",
                },
            ),
        )
        if run is None:
            return None
        self._buffer = []
        return run.info.run_id

    def trial_config(self, run_id: str | None, variant: str, knobs: dict, settings: dict) -> None:
        """The configuration: variant and knobs as params, the fixed settings beside them."""
        if run_id is None:
            return
        from mlflow.entities import Param, RunTag

        params = {"variant": variant} | knobs | {f"train.{k}": v for k, v in settings.items()}
        self._guard(
            "logging a trial's configuration",
            lambda: self.client.log_batch(
                run_id,
                params=[Param(k, _text(v)) for k, v in params.items()],
                tags=[RunTag("variant", variant)],
            ),
        )

    def step(self, step: int, loss: float) -> None:
        """Train loss at ``step`` (buffered; written at the next evaluation)."""
        from mlflow.entities import Metric

        self._buffer.append(Metric("train_loss", loss, _now(), step))

    def evaluation(
        self, run_id: str | None, step: int, dev: float, dev_loss: float | None = None
    ) -> None:
        """Dev metric (and dev cross-entropy, the rungs' signal) at ``step``; flushes the
        buffered losses so the UI's curves are live."""
        from mlflow.entities import Metric

        self._buffer.append(Metric(f"dev_{self.metric_name}", dev, _now(), step))
        if dev_loss is not None:
            self._buffer.append(Metric("dev_loss", dev_loss, _now(), step))
        self._flush(run_id)

    def _flush(self, run_id: str | None) -> None:
        metrics, self._buffer = self._buffer, []
        if run_id is not None and metrics:
            self._guard("logging metrics", lambda: self._log_metrics(run_id, metrics))

    def _log_metrics(self, run_id: str, metrics: list) -> None:
        for start in range(0, len(metrics), _MAX_BATCH):  # MLflow's limit per batch
            self.client.log_batch(run_id, metrics=metrics[start : start + _MAX_BATCH])

    def log_adapter(self, run_id: str | None, directory: Path) -> None:
        """The trained adapter's export, as the run's ``adapter/`` artifacts."""
        if run_id is not None:
            self._guard(
                "storing the adapter",
                lambda: self.client.log_artifacts(run_id, str(directory), ADAPTER_PATH),
            )

    def finish_trial(self, trial: TrialRecord) -> None:
        """Final numbers, state and reason of an ended trial; the run is closed."""
        from mlflow.entities import RunTag

        run_id = trial.run_id
        if run_id is None or self.failed is not None:
            return
        self._flush(run_id)
        now = _now()
        trainable = trial.trainable_params
        final = {
            f"final_dev_{self.metric_name}": trial.dev_metric,
            f"test_{self.metric_name}": trial.test_metric,
            "trainable_params": trainable if trainable is not None else trial.planned_params,
            "adapter_params": trial.adapter_params,
            "head_params": trial.head_params,
            "stored_params": trial.stored_params,
            "steps_used": trial.steps_used,
            "rung": trial.rung,  # rungs reached (multi-fidelity; absent without rungs)
            "steps_per_second": trial.steps_per_second,
            "peak_memory_mb": trial.peak_memory_mb,
        }
        metrics = _final_metrics(final, now)
        state, reason = trial.state, trial.cause or ""
        tags = [RunTag("state", state), RunTag("device", trial.device or "")]
        if reason:
            tags.append(RunTag("reason", reason[:4000]))
        if trial.rung is not None:
            tags.append(RunTag("rung", str(trial.rung)))
        status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED"}.get(state, "FAILED")

        def write() -> None:
            self.client.log_batch(run_id, metrics=metrics, tags=tags)
            self.client.set_terminated(run_id, status)

        self._guard("closing a trial run", write)

    # --- a refit seed (child run) -----------------------------------------------------------------

    def log_refit(
        self, study, refit: Refit, seed: int, result: TrainResult | None, why: str | None = None
    ) -> str | None:
        """One seed of ``lorasearch refit`` as a child run of the study's run (tag
        ``lorasearch.role`` = refit, beside the trials): the configuration at its rate scale,
        the seed, the dev curve, final dev and test; a seed that did not train is FAILED with
        why. A study searched without tracking gets its experiment and parent run here.
        Returns the run's id (None: tracking failed)."""
        if self.failed is None and self.parent_id is None:
            self._guard("opening the study's run", lambda: self._open_study(study))
        if self.parent_id is None:
            return None
        return self._guard(
            "logging a refit run",
            lambda: self._write_refit(study.study_name, refit, seed, result, why),
        )

    def _open_study(self, study) -> None:
        from lorasearch.search import records

        self.metric_name = records.metric_name(study) or "metric"
        self._open_experiment(study.study_name)
        known = records.parent_run_id(study)
        if known and self._run_exists(known):
            self.parent_id = known
            return
        self._open_parent(study, {"study": study.study_name}, {})
        self.client.set_terminated(self.parent_id, "FINISHED")  # a record, not a running search

    def _write_refit(self, study_name: str, refit: Refit, seed: int, result, why) -> str:
        from mlflow.entities import Param

        rate = f"-lr-x{refit.lr_scale:g}" if refit.lr_scale != 1.0 else ""
        tags = {
            "mlflow.parentRunId": self.parent_id,
            "lorasearch.role": "refit",
            "lorasearch.study": study_name,
            "trial": str(refit.number),
            "seed": str(seed),
            "lr_scale": f"{refit.lr_scale:g}",
            "variant": refit.variant,
            "state": "FAILED" if result is None else "COMPLETE",
        } | ({"reason": why[:4000]} if why else {})
        run_id = self.client.create_run(
            self.experiment_id, run_name=f"refit-{refit.number}-seed-{seed}{rate}", tags=tags
        ).info.run_id
        params = {"variant": refit.variant} | refit.knobs | {"lr_scale": refit.lr_scale}
        metrics = [] if result is None else _refit_metrics(result, self.metric_name, _now())
        self.client.log_batch(run_id, params=[Param(k, _text(v)) for k, v in params.items()])
        self._log_metrics(run_id, metrics)
        self.client.set_terminated(run_id, "FAILED" if result is None else "FINISHED")
        return run_id

    # --- the study's view (parent run) ------------------------------------------------------------

    def update_study(
        self,
        finished: int,
        hypervolume: float,
        front_runs: dict[int, str],
        all_runs: dict[int, str],
        plots: Callable[[Path], None],
    ) -> None:
        """After a trial: hypervolume point, ``pareto`` tags kept current, plots re-drawn (at
        most every ``PLOT_INTERVAL_S``, or less often when a drawing takes over ``PLOT_SHARE`` of
        the interval; ``end_study`` draws the last state)."""
        if not self.active:
            return
        from mlflow.entities import Metric, RunTag

        def write() -> None:
            # The front as the parent last recorded it, by whichever worker: tag only the change.
            recorded = self.client.get_run(self.parent_id).data.tags.get("pareto_trials")
            changed = (
                set(all_runs) if recorded is None else set(json.loads(recorded)) ^ set(front_runs)
            )
            for number in changed:
                if number in all_runs:
                    self.client.set_tag(
                        all_runs[number], "pareto", "true" if number in front_runs else "false"
                    )
            self.client.log_batch(
                self.parent_id,
                metrics=[Metric("hypervolume", hypervolume, _now(), finished)],
                tags=[RunTag("pareto_trials", json.dumps(sorted(front_runs)))],
            )

        self._guard("updating the study's run", write)
        self._pending_plots = plots
        if time.monotonic() - self._plotted_at >= self._plot_interval:
            self._draw()

    def _draw(self) -> None:
        plots, self._pending_plots = self._pending_plots, None
        if plots is not None and self.active:
            start = time.monotonic()
            self._guard("drawing the Pareto plot", lambda: self._log_plots(plots))
            self._plotted_at = time.monotonic()
            self._plot_interval = max(PLOT_INTERVAL_S, (self._plotted_at - start) / PLOT_SHARE)

    def _log_plots(self, plots: Callable[[Path], None]) -> None:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            plots(Path(folder))
            self.client.log_artifacts(self.parent_id, folder)

    # --- picking ----------------------------------------------------------------------------------

    def check_run(self, run_id: str, what: str) -> None:
        """Raise unless ``run_id`` (``what``'s run) is an active run of this store: a study
        tracked in another store is named before anything is trained or written."""
        if self._active_run(run_id) is None:
            raise LorasearchError(
                f"{what}'s MLflow run {run_id} is not in the store at {mask_url(self.uri)}: "
                "pass the --tracking-uri it was recorded in"
            )

    def download_adapter(self, run_id: str, destination: Path) -> bool:
        """Copy a trial's stored adapter into ``destination``; False when there is none."""
        import shutil
        import tempfile

        from mlflow.exceptions import MlflowException

        try:
            names = {Path(f.path).name for f in self.client.list_artifacts(run_id, ADAPTER_PATH)}
            if not names:
                return False
            with tempfile.TemporaryDirectory() as folder:
                local = Path(self.client.download_artifacts(run_id, ADAPTER_PATH, folder))
                destination.mkdir(parents=True, exist_ok=True)
                for item in local.iterdir():
                    target = destination / item.name
                    if item.is_dir():
                        shutil.copytree(item, target, dirs_exist_ok=True)
                    else:
                        shutil.copy2(item, target)
            return True
        except (MlflowException, OSError):
            return False

    def register(self, run_id: str, name: str, directory: Path, description: str) -> str:
        """Log the export as a pyfunc model on the trial's run (:mod:`~lorasearch.tracking.pyfunc`;
        the raw folder stays under ``adapter/``, stored if it isn't yet) and register that as a
        new version of ``name`` with alias ``best``; returns the version. Registration is what
        the user asked for, so errors raise."""
        from mlflow.exceptions import MlflowException

        from lorasearch.tracking import pyfunc

        try:
            if not self.client.list_artifacts(run_id, ADAPTER_PATH):
                self.client.log_artifacts(run_id, str(directory), ADAPTER_PATH)
            parent = self.client.get_run(run_id).data.tags.get("mlflow.parentRunId")
            data = self.client.get_run(parent).data.params.get("data") if parent else None
            with pyfunc.global_tracking_uri(self.uri):
                model = pyfunc.log_model(self.client, run_id, directory, data)
                try:
                    self.client.create_registered_model(name, description=description)
                except MlflowException as exc:
                    if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
                        raise
                version = self.client.create_model_version(
                    name, model.model_uri, run_id=run_id, description=description,
                    model_id=model.model_id,
                )  # fmt: skip
            self.client.set_registered_model_alias(name, "best", version.version)
            return str(version.version)
        except Exception as exc:
            raise LorasearchError(
                f"cannot register in the MLflow Model Registry at {mask_url(self.uri)}: "
                f"{mask_url(first_line(exc))}"
            ) from None


Tracker = MlflowTracking  # the name before the Tracking protocol; kept for callers


def _say(message: str) -> None:
    """A tracking failure, said on stderr when nobody else is told."""
    import sys

    print(f"lorasearch: warning: {message}", file=sys.stderr)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:6000]  # MLflow's param value limit


def _refit_metrics(result: TrainResult, metric: str, now: int) -> list:
    """A refit seed's dev curve (as a trial logs it) and its final numbers, as MLflow metrics."""
    from mlflow.entities import Metric

    curve = [
        Metric(name, float(value), now, point.step)
        for point in result.curve
        for name, value in (
            (f"dev_{metric}", point.dev_metric), ("train_loss", point.train_loss),
            ("dev_loss", point.dev_loss),
        )
        if value is not None and math.isfinite(float(value))
    ]  # fmt: skip
    final = {
        f"final_dev_{metric}": result.dev_metric,
        f"test_{metric}": result.test_metric,
        "best_step": result.best_step,
        "steps_used": result.steps,
        "trainable_params": result.trainable_params,
        "stored_params": result.stored_params,
        "steps_per_second": result.steps_per_second,
        "peak_memory_mb": result.peak_memory_mb,
    }
    return curve + _final_metrics(final, now)


def _final_metrics(final: dict[str, Any], now: int) -> list:
    """A run's end-of-run numbers as step-0 MLflow metrics; a missing or non-finite one is left out."""
    from mlflow.entities import Metric

    return [
        Metric(k, float(v), now, 0)
        for k, v in final.items()
        if v is not None and math.isfinite(float(v))
    ]


def _now() -> int:
    return int(time.time() * 1000)

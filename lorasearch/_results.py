"""What the API returns: dataclasses whose fields are the keys of the CLI's ``--json`` objects.

``dataclasses.asdict`` of each is exactly what the matching command prints with ``--json``. The
one result not here, :class:`~lorasearch.training.trainer.TrainResult` (``train``), lives beside
the training loop that fills it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrialRow:
    """One trial of a study as ``pareto`` lists it (``values``: [dev metric, trainable params];
    ``test_metric`` on the front only; ``rung``: the rungs it reached, None without rungs;
    ``paused_at``: the step a paused trial stopped at; ``continues``: the paused trial a
    promotion continued — both with rungs only)."""

    number: int
    state: str
    variant: str | None
    params: dict[str, Any]
    values: list[float] | None
    steps_used: int
    reason: str | None
    test_metric: float | None
    pareto: bool
    rung: int | None = None
    paused_at: int | None = None
    continues: int | None = None


@dataclass
class SearchReport:
    """Every trial of a study, its Pareto front and hypervolume: ``lorasearch pareto --json``."""

    study: str
    metric_name: str | None
    trials: list[TrialRow]
    pareto: list[int]
    hypervolume: float
    hypervolume_history: list[float]
    reference_point: dict[str, float]
    steps_used: int
    refit: dict[str, Any] | None = None  # the study's last refit (``search.report.refit_summary``)

    @classmethod
    def from_dict(cls, report: dict[str, Any]) -> SearchReport:
        return cls(**(report | {"trials": [TrialRow(**row) for row in report["trials"]]}))

    def to_json(self) -> dict[str, Any]:
        """``dataclasses.asdict``, less each trial's ``rung``, ``paused_at`` and ``continues``
        where it was searched without rungs, and less ``refit`` where it was never refit: what
        ``pareto --json`` prints (a study from before either reports as it did)."""
        plain = asdict(self)
        if plain["refit"] is None:
            del plain["refit"]
        for row in plain["trials"]:
            if row["rung"] is None:
                for key in ("rung", "paused_at", "continues"):
                    del row[key]
        return plain

    @property
    def front(self) -> list[TrialRow]:
        """The Pareto trials, in trial order."""
        return [t for t in self.trials if t.pareto]


@dataclass
class Pick:
    """The front's configuration chosen for a budget, and where it was exported and registered:
    ``lorasearch best --json``. ``test_metric_retrained`` is set when the export had to retrain
    the trial (no stored adapter), ``registered_model`` when it was registered. ``by`` says
    whose dev chose: "search", or "refit" (then ``dev_metric`` and ``test_metric`` are the means
    over the refit's seeds, ``hyperparameters`` the refit's at its picked rate, and ``refit``
    has the budget, seeds, spreads, the search's own numbers and the seed an export retrains)."""

    study: str
    trial: int
    variant: str
    hyperparameters: dict[str, Any]
    metric_name: str
    dev_metric: float
    test_metric: float | None
    trainable_params: int
    stored_params: int | None
    rule: str
    why: str
    mlflow_run_id: str | None
    export_dir: str | None = None
    export_source: str | None = None
    registered_version: str | None = None
    test_metric_retrained: float | None = None
    registered_model: str | None = None
    by: str = "search"
    refit: dict[str, Any] | None = None


@dataclass
class RefitRow:
    """One Pareto configuration retrained under several seeds: mean ± std on dev and test over
    the seeds that trained, and why the others did not."""

    number: int
    variant: str
    params: dict[str, Any]
    search_dev_metric: float
    seeds: int  # seeds that trained; the means are over these (None when none did)
    dev_mean: float | None
    dev_std: float | None
    test_mean: float | None
    test_std: float | None
    trainable_params: int
    stored_params: int | None
    failed: list[str] = field(default_factory=list)  # "seed 2: non-finite loss (nan) at step 510"
    lr_scale: float = 1.0  # ``params["lr"]`` is the searched rate times this
    picked: bool = True  # this configuration's scale with the best mean dev (``--lr-scales``)


@dataclass
class RefitReport:
    """``lorasearch refit --json``."""

    study: str
    refits: list[RefitRow]

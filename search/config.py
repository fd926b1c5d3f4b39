"""What a search is given: how to search (:class:`SearchConfig`) and what every trial shares
(:class:`Fixed`, stored on the study as JSON so any worker can rebuild it)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from lorasearch.errors import LorasearchError
from lorasearch.search.samplers import DEFAULT_SAMPLER, check_sampler
from lorasearch.spaces import SearchSpace
from lorasearch.training.trainer import TrainConfig, warmup_steps
from lorasearch.training.trial import DataConfig, ModelConfig

# The settings that fix a study's rungs: a resumed study keeps its own (see search/study.py).
FIDELITY_SETTINGS = ("fidelity", "min_steps", "eta", "signal")


@dataclass
class SearchConfig:
    """How to search: budget, storage, sampler, early stopping and the space. (Tracking is not
    part of it: ``run_search`` takes a tracker, see ``lorasearch.tracking.make_tracking``.)"""

    trials: int
    space: SearchSpace
    timeout_s: float | None = None
    storage: str | None = None
    study_name: str | None = None
    sampler: str = DEFAULT_SAMPLER
    seed: int = 0
    early_stop: bool = True
    margin: float = 0.01
    max_params: int | None = None
    total: bool = False  # trials = the study's target of ended trials, not how many to add
    heartbeat_s: float = 30.0  # a silent worker's trial is failed after 2 heartbeats (and retried)
    # A new study's first trials: known-good recipes on a ladder of placements across the params
    # decades (search/design.py). On SST-2 at R = 810 it widened the front from 1.64 to 3.23
    # decades and raised its hypervolume 1.08x for 0.49x the steps (one seed each). None: on,
    # and quiet where it cannot apply; True says so; False leaves it out.
    initial_design: bool | None = None
    # Multi-fidelity (search/fidelity.py): rungs at R/eta^k .. R (R = the trials' steps), down to
    # min_steps; at each rung below R the top 1/eta go on, the rest pause (search/promotion.py).
    fidelity: bool = True
    min_steps: int | None = None  # the lowest rung [default: fidelity.rung_steps' own]
    eta: int = 3
    # The early-rung signal. dev_loss (dev cross-entropy) for now: the learning-curve table
    # (bench/table.py, issue 13) decides between it and dev_metric from the rank correlations.
    signal: str = "dev_loss"

    def __post_init__(self) -> None:
        if self.heartbeat_s <= 0:
            raise LorasearchError(f"--heartbeat must be > 0 seconds, got {self.heartbeat_s}")
        if self.trials < 1:
            raise LorasearchError(f"--trials must be >= 1, got {self.trials}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise LorasearchError(f"--timeout must be > 0 seconds, got {self.timeout_s}")
        check_sampler(self.sampler)
        if self.max_params is not None and self.max_params < 1:
            raise LorasearchError(f"--max-params must be >= 1, got {self.max_params}")
        if not 0 <= self.margin < 1:
            raise LorasearchError(f"--early-stop-margin must be in [0, 1), got {self.margin}")
        from lorasearch.search.fidelity import SIGNALS

        if self.signal not in SIGNALS:
            raise LorasearchError(
                f"unknown --fidelity-signal '{self.signal}'; use {', '.join(SIGNALS)}"
            )
        if self.eta < 2:
            raise LorasearchError(f"--eta must be >= 2, got {self.eta}")
        if self.min_steps is not None and self.min_steps < 1:
            raise LorasearchError(f"--min-steps must be >= 1, got {self.min_steps}")

    def rungs(self, max_steps: int) -> tuple[int, ...]:
        """The steps at which trials are compared: ascending, the last is ``max_steps`` (R);
        just (R,) without fidelity. Bad values are the user's one-line error."""
        if not self.fidelity:
            return (max_steps,)
        from lorasearch.search.fidelity import rung_steps

        return tuple(rung_steps(max_steps, self.min_steps, self.eta))

    def pin_rungs(self, max_steps: int) -> None:
        """Make the default lowest rung explicit (``min_steps``), as a new study records it:
        a later default then leaves the study's rungs alone."""
        if self.fidelity and self.min_steps is None:
            self.min_steps = self.rungs(max_steps)[0]

    def schedule(self, train: TrainConfig) -> str:
        """The rungs as a search's start says them, and whether the lowest ones fall inside the
        learning-rate warmup (the trainer's ``warmup_steps``), where ranking favours small
        adapters: at R = 810 on an H200, 44 of 48 SST-2 configurations scored within 0.05 nats
        of chance at step 30 and the front was four VeRAs (BENCHMARKS §15)."""
        steps = train.steps
        if not self.fidelity:
            return f"every trial to {steps} steps (no rungs)"
        rungs = self.rungs(steps)
        text = (
            f"rungs at steps {', '.join(map(str, rungs))} (eta {self.eta}, ranked by {self.signal})"
        )
        warmup = warmup_steps(train.warmup_ratio, steps)
        inside = [r for r in rungs[:-1] if r < warmup]
        if inside:
            past = next(r for r in rungs if r >= warmup)
            text += (
                f"; the learning-rate warmup runs to step {warmup}, past rung "
                f"{', '.join(map(str, inside))}, where small adapters tend to go on "
                f"(--min-steps {past} ranks past it)"
            )
        return text

    @property
    def design(self) -> bool:
        """Whether a new study starts with the initial design (``initial_design`` not False)."""
        return self.initial_design is not False

    def settings(self) -> dict[str, Any]:
        """What the study keeps of this config, so a worker joining it searches the same way."""
        return {
            "sampler": self.sampler, "seed": self.seed, "early_stop": self.early_stop,
            "margin": self.margin, "max_params": self.max_params, "fidelity": self.fidelity,
            "min_steps": self.min_steps, "eta": self.eta, "signal": self.signal,
            "initial_design": self.design,
        }  # fmt: skip


@dataclass
class Fixed:
    """The part of every trial the search does not vary."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_json(self) -> str:
        train = asdict(self.train)
        if not train["eval_steps"]:  # (a trial's rungs; the study's own settings hold them)
            del train["eval_steps"]
        return json.dumps({"data": asdict(self.data), "model": asdict(self.model), "train": train})

    @classmethod
    def from_json(cls, text: str) -> Fixed:
        raw = json.loads(text)
        model = raw["model"] | {
            "targets": tuple(raw["model"]["targets"]) if raw["model"]["targets"] else None
        }
        return cls(DataConfig(**raw["data"]), ModelConfig(**model), TrainConfig(**raw["train"]))

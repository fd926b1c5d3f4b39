"""One trial end to end: task -> model + adapter -> trainer -> result.

Task data and the base model are cached per process, so a worker running many trials loads and
tokenizes them once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lorasearch.adapters import Adapter, InjectContext, ParamCounts
from lorasearch.training.data import tokenize_task
from lorasearch.training.models import LoadedModel, load_model
from lorasearch.training.tasks import TaskData, load_task, resolve_spec
from lorasearch.training.trainer import EvalCallback, TrainConfig, TrainResult, train


@dataclass(frozen=True)
class DataConfig:
    """Which data, which columns, which metric; subsampling always uses ``data_seed``."""

    task: str | None = None
    data: str | None = None
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    metric: str | None = None
    train_samples: int | None = None
    eval_samples: int | None = None
    data_seed: int = 0


@dataclass(frozen=True)
class ModelConfig:
    """Which base model and which of its modules to adapt (None: detect)."""

    model: str | None = None
    targets: tuple[str, ...] | None = None
    trust_remote_code: bool = False


@lru_cache(maxsize=4)
def load_data(config: DataConfig) -> TaskData:
    """The task described by ``config`` (cached per process)."""
    spec = resolve_spec(
        config.task,
        text_column=config.text_column,
        text_pair_column=config.text_pair_column,
        label_column=config.label_column,
        metric=config.metric,
    )
    return load_task(
        spec,
        config.data,
        train_samples=config.train_samples,
        eval_samples=config.eval_samples,
        seed=config.data_seed,
    )


def load_inputs(
    data: DataConfig, model: ModelConfig, seed: int = 0
) -> tuple[TaskData, LoadedModel]:
    """The task and a fresh copy of the base model (head seeded by ``seed``), both cached."""
    task = load_data(data)
    loaded = load_model(
        model.model,
        task.label_names,
        targets=list(model.targets) if model.targets else None,
        seed=seed,
        trust_remote_code=model.trust_remote_code,
    )
    return task, loaded


@dataclass
class Trial:
    """Everything that defines one run: the fixed parts and the adapter configuration."""

    data: DataConfig
    model: ModelConfig
    adapter: Adapter
    train: TrainConfig = field(default_factory=TrainConfig)


def run_trial(
    trial: Trial,
    *,
    on_eval: EvalCallback | None = None,
    on_step: Callable[[int, float], None] | None = None,
    progress: Callable[..., None] | None = None,
    export_dir: Path | None = None,
    score_test: bool | Callable[[TrainResult], bool] = True,
    checkpoint: Path | None = None,
) -> TrainResult:
    """Load (or reuse) the task and base model, train the adapter, return the measured result
    (``score_test``, ``checkpoint``: see :func:`~lorasearch.training.trainer.train`)."""
    task, loaded = load_inputs(trial.data, trial.model, trial.train.seed)
    tokenized = tokenize_task(task, loaded.tokenizer, trial.train.max_length)
    return train(
        loaded,
        trial.adapter,
        task,
        tokenized,
        trial.train,
        on_eval=on_eval,
        on_step=on_step,
        progress=progress,
        export_dir=export_dir,
        score_test=score_test,
        checkpoint=checkpoint,
    )


def planned_counts(trial: Trial) -> ParamCounts:
    """The configuration's parameter counts before any training, from a throwaway injection.

    Exact for every variant but LoRA-drop, whose kept set comes from training: its count here is
    the upper bound (every module keeps its own LoRA).
    """
    _, loaded = load_inputs(trial.data, trial.model, trial.train.seed)
    adapter = trial.adapter.planning_adapter()
    context = InjectContext(
        loaded.head_modules,
        adapter.placed_targets(loaded.target_modules),
        trial.train.seed,
        trial.train.steps,
    )
    return adapter.counts(adapter.inject(loaded.model, context), context)

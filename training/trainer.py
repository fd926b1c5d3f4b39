"""The training loop: one adapter configuration, trained and measured honestly.

Plain PyTorch: AdamW over the adapter's parameter groups, linear warmup then decay, gradient
clipping, a dev evaluation every ``eval_every`` steps (the learning curve), the best-on-dev weights
kept, and the test split scored once, with those weights, at the end (unless the caller says,
once training is over, that this result's test score will not be used: ``score_test``).

Each dev evaluation also measures the dev mean cross-entropy (``EvalPoint.dev_loss``), a smoother
early signal than the metric; ``TrainConfig.eval_steps`` adds evaluation steps (a search's rungs)
to the regular interval. A rung below the budget scores only as much of dev as ranking needs
(``training/evaluation.py``; ``EvalPoint.dev_examples``), and such an estimate is never kept as
the best-on-dev weights.

Given a ``checkpoint`` folder, the run saves itself after each rung it passes and a later run
of the same configuration resumes there, ending exactly as an uninterrupted run would
(``training/checkpoint.py``).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import torch
from torch import nn

from lorasearch.adapters.base import Adapter, InjectContext, write_metadata
from lorasearch.errors import LorasearchError
from lorasearch.training import checkpoint as ckpt
from lorasearch.training.data import TokenizedSplit, collate, eval_batches, train_batches
from lorasearch.training.dropout import use_fast_dropout
from lorasearch.training.evaluation import (
    LossTally,
    chunks_ahead,
    needs_more_examples,
    rung_chunk_size,
    rung_chunks,
)
from lorasearch.training.metrics import compute_metric
from lorasearch.training.models import LoadedModel, bundled_package
from lorasearch.training.tasks import TaskData


@dataclass
class TrainConfig:
    """The fixed part of a trial: budget, batching and schedule."""

    steps: int = 300
    batch_size: int = 32
    max_length: int = 64
    eval_every: int | None = None  # None: five evaluations over the run
    eval_batch_size: int = 128
    warmup_ratio: float = 0.06
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    group_by_length: bool = True
    fast_dropout: bool = True  # CPU only: int32 dropout masks (see training/dropout.py)
    seed: int = 0
    device: str = "auto"
    # Extra dev evaluations (a search's rungs), besides the interval.
    eval_steps: tuple[int, ...] = ()
    # A rung below the budget scores a dev subsample sized by its noise (training/evaluation.py).
    rung_subsample: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "max_length", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise LorasearchError(f"--{name.replace('_', '-')} must be >= 1")
        self.eval_steps = tuple(sorted({int(s) for s in self.eval_steps}))
        if any(s < 1 for s in self.eval_steps):
            raise LorasearchError("evaluation steps must be >= 1")
        if self.eval_every is not None and self.eval_every < 1:
            raise LorasearchError("--eval-every must be >= 1")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise LorasearchError("--warmup-ratio must be in [0, 1)")

    @property
    def eval_interval(self) -> int:
        return self.eval_every or max(1, self.steps // 5)

    def evaluates_at(self, step: int) -> bool:
        """Whether the dev split is scored after ``step``."""
        return step % self.eval_interval == 0 or step == self.steps or step in self.eval_steps

    def subsamples_at(self, step: int) -> bool:
        """Whether the dev evaluation after ``step`` may stop on a subsample: a rung (an
        ``eval_steps`` step) that is neither a regular interval step nor the last."""
        regular = step % self.eval_interval == 0 or step == self.steps
        return self.rung_subsample and step in self.eval_steps and not regular


@dataclass
class EvalPoint:
    step: int
    dev_metric: float
    train_loss: float
    dev_loss: float | None = None  # dev mean cross-entropy
    # Dev examples scored: a rung's subsample, whose dev_metric/dev_loss are estimates that
    # never become the best-on-dev checkpoint. None: all of dev.
    dev_examples: int | None = None


@dataclass
class TrainResult:
    """Everything a trial reports; ``to_json`` is the CLI's ``--json`` object."""

    variant: str
    hyperparameters: dict
    metric_name: str
    dev_metric: float
    test_metric: float | None  # None when the caller's ``score_test`` declined it
    best_step: int
    trainable_params: int
    adapter_params: int
    head_params: int
    stored_params: int
    steps: int
    preliminary_steps: int
    steps_per_second: float
    tokens_per_second: float
    train_time_s: float
    wall_time_s: float
    eval_time_s: float  # dev evaluations and the test scoring (when scored)
    prepare_time_s: float  # a variant's preliminary pass (LoRA-drop), else ~0
    peak_memory_mb: float
    device: str
    label_names: list[str]
    curve: list[EvalPoint] = field(default_factory=list)
    adapter_details: dict = field(default_factory=dict)  # variant-specific (ranks, kept modules)
    stopped_early: str | None = None  # the reason, when ``on_eval`` stopped the run
    splits: dict = field(default_factory=dict)
    export_dir: str | None = None
    resumed_from: int = 0  # the step a checkpoint let this run resume at (0: from the start)

    def to_json(self) -> dict:
        return asdict(self)


# Called after each dev evaluation with its EvalPoint; returning a string stops the run and
# becomes its recorded reason (the search's rungs and early stopping plug in here).
EvalCallback = Callable[[EvalPoint], "str | None"]


def train(
    loaded: LoadedModel,
    adapter: Adapter,
    task: TaskData,
    data: dict[str, TokenizedSplit],
    config: TrainConfig,
    *,
    on_eval: EvalCallback | None = None,
    on_step: Callable[[int, float], None] | None = None,
    progress: Callable[..., None] | None = None,
    export_dir: Path | None = None,
    score_test: bool | Callable[[TrainResult], bool] = True,
    checkpoint: Path | None = None,
) -> TrainResult:
    """Train ``adapter`` on ``loaded.model`` and score it; see the module docstring.

    ``checkpoint``: a folder the caller owns. A checkpoint there from an earlier run of this
    configuration is resumed (another configuration's raises), and one is written after each
    rung (``eval_steps``) at which the run goes on; see ``training/checkpoint.py``.

    ``score_test`` False (or a callable returning False for the trained result) skips the test
    split: ``test_metric`` stays None and no evaluation time is spent on it.

    ``export_dir``: where the trained adapter is exported, unless ``on_eval`` stopped the run
    (a paused or early-stopped trial's adapter is never exported or logged: saving it cost a
    write per pause for nothing).

    ``on_step(step, loss)`` sees each step's loss where it is read (every step on CPU, every
    10th on accelerators, where reading it would sync the host)."""
    wall_start = time.perf_counter()
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model = loaded.model.to(device)
    pad_id = loaded.tokenizer.pad_token_id
    pad_left = getattr(loaded.tokenizer, "padding_side", "right") == "left"
    train_split = data["train"]
    context = InjectContext(
        head_modules=loaded.head_modules,
        target_modules=adapter.placed_targets(loaded.target_modules),
        seed=config.seed,
        total_steps=config.steps,
        sample_trainer=SampleTrainer(train_split, config, device, pad_id, pad_left),
    )
    batches = train_batches(
        train_split.lengths, config.batch_size, config.seed, config.group_by_length
    )
    curve: list[EvalPoint] = []
    best_metric, best_step, best_state = -math.inf, 0, None
    stopped_early = None
    tokens, train_time_s, eval_time_s, loss_sum, loss_count = 0, 0.0, 0.0, 0.0, 0
    key = ckpt.fingerprint(adapter, config, task.fingerprint)
    saved = ckpt.load(checkpoint, key) if checkpoint is not None else None  # refused before work

    with PeakMemory(device) as memory:
        tick = time.perf_counter()
        adapter.prepare(model, context)  # a preliminary pass, if the variant has one
        prepare_time_s = time.perf_counter() - tick
        model = adapter.inject(model, context).to(device)
        if config.fast_dropout and device.type == "cpu":
            use_fast_dropout(model)
        stepper = Stepper(model, adapter, config, config.steps, device)
        step = 0
        if saved is not None:
            loop = ckpt.restore(saved, model, adapter, stepper)
            step, tokens, curve = loop.step, loop.tokens, [EvalPoint(**p) for p in loop.curve]
            best_metric, best_step, best_state = loop.best_metric, loop.best_step, loop.best_state
            train_time_s, eval_time_s = loop.train_time_s, loop.eval_time_s
            for _ in range(step):  # the same batches from here on (index lists: cheap to redraw)
                next(batches)
        resumed_from = step
        while step < config.steps:
            step += 1
            tick = time.perf_counter()
            indices = next(batches)
            tokens += sum(train_split.lengths[i] for i in indices)
            batch = _to_device(collate(train_split, indices, pad_id, pad_left), device)
            loss = stepper.step(batch, step)
            if device.type == "cpu" or step % 10 == 0:  # no per-step host sync on accelerators
                value = finite(loss, step)
                loss_sum, loss_count = loss_sum + value, loss_count + 1
                if on_step:
                    on_step(step, value)
            train_time_s += time.perf_counter() - tick

            if config.evaluates_at(step):
                tick = time.perf_counter()
                dev_metric, dev_loss, dev_examples = evaluate_dev(
                    model, data["dev"], task.spec.metric, config, step, pad_id, device,
                    pad_left=pad_left,
                )  # fmt: skip
                eval_time_s += time.perf_counter() - tick
                train_loss = loss_sum / max(loss_count, 1)
                loss_sum, loss_count = 0.0, 0
                point = EvalPoint(step, dev_metric, train_loss, dev_loss, dev_examples)
                curve.append(point)
                # a subsample's metric is an estimate: never the best-on-dev checkpoint
                selectable = dev_examples is None and adapter.selectable(step)
                if selectable and dev_metric > best_metric:
                    best_metric, best_step = dev_metric, step
                    best_state = adapter.checkpoint_state(model)
                if progress:
                    progress(step=step, loss=train_loss, dev=dev_metric)
                # saved before the rung's verdict: a paused trial may be continued from here
                if checkpoint is not None and step in config.eval_steps and step < config.steps:
                    loop = ckpt.LoopState(
                        step, best_metric, best_step, best_state, tokens, train_time_s,
                        eval_time_s, [asdict(p) for p in curve],
                    )  # fmt: skip
                    ckpt.save(checkpoint, key, loop, model, adapter, stepper)
                if on_eval and (reason := on_eval(point)):
                    stopped_early = reason
                    break
            elif progress and step % 10 == 0:
                progress(step=step, loss=loss_sum / max(loss_count, 1))

    if best_state is not None:
        adapter.load_checkpoint_state(model, best_state)
    else:  # stopped before any selectable step: the current weights are the result
        best_metric, best_step = curve[-1].dev_metric, step
    counts = adapter.counts(model, context)  # after training: some variants prune (AdaLoRA)
    result = TrainResult(
        variant=adapter.name,
        hyperparameters=adapter.hyperparameters(),
        metric_name=task.spec.metric,
        dev_metric=best_metric,
        test_metric=None,
        best_step=best_step,
        trainable_params=counts.trainable,
        adapter_params=counts.adapter,
        head_params=counts.head,
        stored_params=counts.stored,
        steps=step,
        preliminary_steps=adapter.preliminary_steps,
        steps_per_second=step / train_time_s,
        tokens_per_second=tokens / train_time_s,
        train_time_s=train_time_s,
        wall_time_s=0.0,  # set below
        eval_time_s=eval_time_s,
        prepare_time_s=prepare_time_s,
        peak_memory_mb=memory.peak_mb,
        device=str(device),
        label_names=list(task.label_names),
        curve=curve,
        adapter_details=adapter.details(model),
        stopped_early=stopped_early,
        splits=task.split_summary(),
        resumed_from=resumed_from,
    )
    if score_test(result) if callable(score_test) else score_test:
        tick = time.perf_counter()
        result.test_metric = evaluate(
            model, data["test"], task.spec.metric, config, pad_id, device, pad_left=pad_left
        )
        result.eval_time_s += time.perf_counter() - tick
    result.wall_time_s = time.perf_counter() - wall_start
    if export_dir is not None and not stopped_early:  # a paused or stopped trial is never used
        export(
            adapter, model, result, task, loaded, export_dir, config.max_length,
            context.target_modules,
        )  # fmt: skip
    return result


class NonFiniteLoss(LorasearchError):
    """The loss became NaN or infinite: the configuration diverged."""


def finite(loss: torch.Tensor, step: int) -> float:
    """The loss as a float; a NaN or infinite loss stops the run at once."""
    value = loss.item()
    if not math.isfinite(value):
        raise NonFiniteLoss(f"non-finite loss ({value}) at step {step}")
    return value


class Stepper:
    """AdamW over an adapter's parameter groups with warmup-then-linear-decay; one call, one step.

    Order inside a step: backward, clip, ``adapter.before_step``, optimizer and schedule step,
    ``adapter.after_step`` (gradients still present), zero the gradients.
    """

    def __init__(
        self,
        model: nn.Module,
        adapter: Adapter,
        config: TrainConfig,
        steps: int,
        device: torch.device,
    ):
        self.model, self.adapter, self.config = model, adapter, config
        self.groups = adapter.param_groups(model)
        for group in self.groups:
            group.setdefault("weight_decay", config.weight_decay)
        self.params = [p for group in self.groups for p in group["params"]]
        self.optimizer = _adamw(self.groups, device)
        self.scheduler = _linear_schedule(self.optimizer, config.warmup_ratio, steps)
        self.autocast = _autocast(device)

    def step(self, batch: dict, step: int) -> torch.Tensor:
        self.model.train()
        with self.autocast:
            loss = self.model(**batch).loss
        loss.backward()
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        self.adapter.before_step(self.model, step)
        self.optimizer.step()
        self.scheduler.step()
        self.adapter.after_step(self.model, step)
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


class SampleTrainer:
    """Lends a variant the train split for a preliminary pass (see ``adapters.base``)."""

    def __init__(
        self,
        split: TokenizedSplit,
        config: TrainConfig,
        device: torch.device,
        pad_id: int,
        pad_left: bool,
    ):
        self.split, self.config, self.device = split, config, device
        self.pad_id, self.pad_left = pad_id, pad_left

    def sample(self, fraction: float) -> list[int]:
        """Seeded, label-stratified: ``fraction`` of each label's examples (at least one)."""
        generator = torch.Generator().manual_seed(self.config.seed + 7)
        by_label: dict[int, list[int]] = {}
        for index, label in enumerate(self.split.labels):
            by_label.setdefault(label, []).append(index)
        chosen = []
        for label in sorted(by_label):
            members = by_label[label]
            order = torch.randperm(len(members), generator=generator).tolist()
            chosen += [members[i] for i in order[: max(1, round(fraction * len(members)))]]
        return sorted(chosen)

    def fit(self, model: nn.Module, adapter: Adapter, indices: list[int], steps: int) -> None:
        stepper = Stepper(model, adapter, self.config, steps, self.device)
        lengths = [self.split.lengths[i] for i in indices]
        batches = train_batches(lengths, self.config.batch_size, self.config.seed)
        for step in range(1, steps + 1):
            chosen = [indices[j] for j in next(batches)]
            batch = collate(self.split, chosen, self.pad_id, self.pad_left)
            finite(stepper.step(_to_device(batch, self.device), step), step)

    def batches(self, indices: list[int]):
        lengths = [self.split.lengths[i] for i in indices]
        for chunk in eval_batches(lengths, self.config.eval_batch_size):
            batch = collate(self.split, [indices[j] for j in chunk], self.pad_id, self.pad_left)
            yield _to_device(batch, self.device)


def evaluate(
    model: nn.Module,
    split: TokenizedSplit,
    metric: str,
    config: TrainConfig,
    pad_id: int,
    device: torch.device,
    *,
    pad_left: bool = False,
    with_loss: bool = False,
    batch_size: int | None = None,
) -> float | tuple[float, float]:
    """The metric of ``model``'s argmax predictions on ``split``, its batches padded on the side
    training padded them (``pad_left`` for a tokenizer that pads left), so dev and test score
    the inputs the model learned on and that the tokenizer gives at inference. ``with_loss``:
    ``(metric, mean cross-entropy)``, the loss from the same forward passes. ``batch_size``
    defaults to ``config.eval_batch_size``: the batches of ``lorasearch.load``'s predict, which
    so reproduces the recorded test metric exactly."""
    model.eval()
    size = batch_size or config.eval_batch_size
    with torch.inference_mode(), _autocast(device):
        losses, predictions = _score(
            model, split, range(len(split)), size, pad_id, device, pad_left
        )
    metric_value = compute_metric(metric, split.labels, predictions.tolist())
    if not with_loss:
        return metric_value
    return metric_value, losses.double().sum().item() / max(len(split), 1)


def evaluate_dev(
    model: nn.Module,
    split: TokenizedSplit,
    metric: str,
    config: TrainConfig,
    step: int,
    pad_id: int,
    device: torch.device,
    *,
    pad_left: bool = False,
) -> tuple[float, float, int | None]:
    """The dev evaluation after ``step``: ``(metric, mean cross-entropy, examples scored)``, a
    noise-sized subsample at a rung below the budget (``config.subsamples_at``), else all of
    dev through ``evaluate`` (examples None)."""
    if config.subsamples_at(step):
        return evaluate_subsample(model, split, metric, config, pad_id, device, pad_left=pad_left)
    size = _dev_batch_size(config, device)
    metric_value, loss = evaluate(
        model, split, metric, config, pad_id, device, pad_left=pad_left, with_loss=True,
        batch_size=size,
    )  # fmt: skip
    return metric_value, loss, None


def evaluate_subsample(
    model: nn.Module,
    split: TokenizedSplit,
    metric: str,
    config: TrainConfig,
    pad_id: int,
    device: torch.device,
    *,
    pad_left: bool = False,
) -> tuple[float, float, int | None]:
    """``split`` scored in ``config.seed``'s fixed order, a chunk (half an eval batch,
    ``rung_chunk_size``) at a time, until the mean cross-entropy is known well enough
    (``training/evaluation.py``): ``(metric on the examples scored, their mean cross-entropy,
    how many or None for all)``. The chunks are scored several at once (``chunks_ahead``) and
    the rule replayed chunk by chunk: the examples counted are those of the chunk-by-chunk
    rule; those scored past its stop are dropped."""
    model.eval()
    chunk_size = rung_chunk_size(config.eval_batch_size)
    batch_size = _dev_batch_size(config, device)
    chunks = rung_chunks(split.lengths, chunk_size, config.seed)
    tally, used, scored, predictions = LossTally(), 0, [], []
    with torch.inference_mode(), _autocast(device):
        while used < len(chunks) and needs_more_examples(tally):
            group = chunks[used : used + chunks_ahead(tally, chunk_size)]
            flat = [i for chunk in group for i in chunk]
            losses, guesses = _score(model, split, flat, batch_size, pad_id, device, pad_left)
            taken = _replay(group, losses.tolist(), tally)
            scored += flat[:taken]
            predictions += guesses[:taken].tolist()
            used += len(group)
    metric_value = compute_metric(metric, [split.labels[i] for i in scored], predictions)
    return metric_value, tally.mean, len(scored) if len(scored) < len(split) else None


def _replay(chunks: list[list[int]], losses: list[float], tally: LossTally) -> int:
    """Add ``chunks``' losses (flattened in order) to ``tally`` a chunk at a time until the
    stopping rule holds; returns how many examples were added."""
    taken = 0
    for chunk in chunks:
        tally.add(losses[taken : taken + len(chunk)])
        taken += len(chunk)
        if not needs_more_examples(tally):
            break
    return taken


def _score(
    model: nn.Module,
    split: TokenizedSplit,
    indices,
    size: int,
    pad_id: int,
    device: torch.device,
    pad_left: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each example's cross-entropy and prediction (CPU tensors, in ``indices``' order), scored
    in batches of ``size`` in length order (stable: for all of a split, ``eval_batches``'
    batches); one host sync, at the end."""
    indices = list(indices)
    order = sorted(range(len(indices)), key=lambda j: split.lengths[indices[j]])
    losses = torch.empty(len(indices), device=device)
    predictions = torch.empty(len(indices), dtype=torch.long, device=device)
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        logits, labels = _logits(model, split, [indices[j] for j in rows], pad_id, device, pad_left)
        at = torch.tensor(rows, device=device)
        losses[at] = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        predictions[at] = logits.argmax(dim=-1)
    return losses.cpu(), predictions.cpu()


# On CPU dev evaluations batch at most this many examples: smaller batches pad less and stay in
# cache. Measured on one core (MiniLM + LoRA, SST-2): all 1,000 of dev (mean 14 tokens) took
# 5.5 s in batches of 128, 4.3 s of 64, 4.0 s of 32, 4.1 s of 16 (test, 872 of mean 25 tokens:
# 7.1, 6.3, 6.2, 6.4 s, but test keeps ``eval_batch_size``: predict's batches, see
# ``evaluate``). Accelerators keep ``eval_batch_size``.
CPU_DEV_BATCH = 32


def _dev_batch_size(config: TrainConfig, device: torch.device) -> int:
    if device.type == "cpu":
        return min(config.eval_batch_size, CPU_DEV_BATCH)
    return config.eval_batch_size


def _logits(
    model: nn.Module,
    split: TokenizedSplit,
    indices: list[int],
    pad_id: int,
    device: torch.device,
    pad_left: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits and labels of the examples ``indices``, padded as one batch."""
    batch = _to_device(collate(split, indices, pad_id, pad_left), device)
    labels = batch.pop("labels")
    return model(**batch).logits, labels


def export(
    adapter: Adapter,
    model: nn.Module,
    result: TrainResult,
    task: TaskData,
    loaded: LoadedModel,
    directory: Path,
    max_length: int,
    adapted_modules: list[str],
) -> None:
    """Write the adapter with the label mapping, the tokenization length and the result.

    ``target_modules`` is the model-level list (the loader's, which ``lorasearch.load`` passes
    back to it); ``adapted_modules`` the projections the adapter wraps (its placement)."""
    directory.mkdir(parents=True, exist_ok=True)
    adapter.export(model, directory)
    result.export_dir = str(directory)
    write_metadata(
        directory,
        {
            "variant": adapter.name,
            "hyperparameters": adapter.hyperparameters(),
            "base_model": loaded.source,
            "base_model_package": bundled_package(loaded.source),
            "task": task.spec.name,
            "text_column": task.spec.text_column,
            "text_pair_column": task.spec.text_pair_column,
            "label_names": list(task.label_names),
            "id2label": dict(enumerate(task.label_names)),
            "metric_name": result.metric_name,
            "dev_metric": result.dev_metric,
            "test_metric": result.test_metric,
            "trainable_params": result.trainable_params,
            "stored_params": result.stored_params,
            "target_modules": loaded.target_modules,
            "adapted_modules": list(adapted_modules),
            "max_length": max_length,
        },
    )


# --- helpers -------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU; anything else must exist on this machine."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise LorasearchError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise LorasearchError(f"device '{name}' requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise LorasearchError(
                f"device '{name}' does not exist ({torch.cuda.device_count()} GPU(s) visible)"
            )
    elif device.type != "cpu":
        raise LorasearchError(f"unsupported device '{name}' (use auto, cpu, cuda or cuda:N)")
    return device


def _adamw(groups: list[dict], device: torch.device) -> torch.optim.Optimizer:
    try:  # the fused kernel is one launch per step on CUDA and vectorised on CPU
        return torch.optim.AdamW(groups, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, foreach=device.type == "cuda")


def warmup_steps(warmup_ratio: float, steps: int) -> int:
    """The learning-rate warmup of a ``steps``-step run, in steps (the search's rung line says
    where it ends, so both read it here)."""
    return int(warmup_ratio * steps)


def _linear_schedule(optimizer: torch.optim.Optimizer, warmup_ratio: float, steps: int):
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(optimizer, warmup_steps(warmup_ratio, steps), steps)


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_device(batch: dict, device: torch.device) -> dict:
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class PeakMemory:
    """Peak memory of a block in MB: allocated tensors on CUDA, process RSS (sampled) on CPU."""

    def __init__(self, device: torch.device, interval_s: float = 0.02):
        self.device, self.interval_s, self.peak_mb = device, interval_s, 0.0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._process = psutil.Process()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        peak = 0
        while True:
            peak = max(peak, self._process.memory_info().rss)
            self.peak_mb = peak / 2**20
            if self._stop.wait(self.interval_s):
                return

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self._stop.set()
            self._thread.join()

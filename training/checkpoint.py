"""A run's checkpoint at its latest rung, so a killed trial resumes where it stopped.

The caller owns a folder; the trainer writes one file there after each rung at which the run
continues, and a later run of the same configuration continues from it. The file holds exactly
what the next step depends on, so a resumed run ends bit for bit where an uninterrupted one would:

- the step, and every tensor training changed (``Adapter.checkpoint_state``: the trainable
  weights, and Delta-LoRA's moved base weights), plus the variant's other training state
  (``Adapter.training_state``: AdaLoRA's importance averages and rank pattern);
- the optimizer's and the schedule's state (Adam's moments, the learning rate's position);
- the torch RNG state (CPU, and CUDA when used): dropout masks are drawn from it;
- the loop's bookkeeping: the best-on-dev metric, step and weights so far, the curve so far,
  the tokens seen and the train and evaluation time spent;
- a fingerprint of the configuration (variant, hyperparameters, ``TrainConfig`` but its
  ``eval_steps``, which a search may change between tries without changing the run, and its
  ``device``, and the task's rows), so a checkpoint is never continued by another configuration.

The batch order is not stored: it is a seeded generator of index lists, rebuilt and advanced
``step`` batches, which costs microseconds. A preliminary pass (LoRA-drop) is deterministic and
simply re-runs. The file is written to a temporary name and renamed, so a kill mid-write leaves
the previous checkpoint whole; only the latest is kept. Everything stored is tensors and plain
Python values, so it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lorasearch.errors import LorasearchError

if TYPE_CHECKING:
    from lorasearch.adapters.base import Adapter
    from lorasearch.training.trainer import Stepper, TrainConfig

FILE = "checkpoint.pt"
FORMAT = 1  # bumped when the stored keys change; an older file is refused like another config


@dataclass
class LoopState:
    """The loop's bookkeeping at ``step`` (the curve as ``EvalPoint`` field dicts)."""

    step: int
    best_metric: float
    best_step: int
    best_state: dict[str, torch.Tensor] | None
    tokens: int
    train_time_s: float
    eval_time_s: float
    curve: list[dict[str, Any]] = field(default_factory=list)


def fingerprint(adapter: Adapter, config: TrainConfig, data: str = "") -> str:
    """What makes two runs the same run: variant, hyperparameters, the config but its rungs, and
    ``data`` (the task's fingerprint: its rows)."""
    # Not the rungs (a search may move them between tries) nor the device: workers on one
    # machine run on different GPUs (`--device cuda:$gpu`) and a retry lands on any of them.
    train = {
        k: v for k, v in dataclasses.asdict(config).items() if k not in ("eval_steps", "device")
    }
    described = {"variant": adapter.name, "hyperparameters": adapter.hyperparameters()}
    described |= {"train": train, "data": data, "format": FORMAT}
    return hashlib.sha1(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


def save(
    folder: Path | str,
    key: str,
    loop: LoopState,
    model: nn.Module,
    adapter: Adapter,
    stepper: Stepper,
) -> None:
    """Write the checkpoint atomically (temporary file, then rename over the previous one)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    payload = {
        "fingerprint": key,
        "loop": dict(vars(loop)),  # not ``asdict``: it would deep-copy the best weights
        "weights": adapter.checkpoint_state(model),
        "adapter": adapter.training_state(model),
        "optimizer": stepper.optimizer.state_dict(),
        "scheduler": stepper.scheduler.state_dict(),
        "rng": _rng_state(_device(model)),
    }
    partial = folder / f"{FILE}.tmp"
    torch.save(payload, partial)
    os.replace(partial, folder / FILE)


def load(folder: Path | str, key: str) -> dict[str, Any] | None:
    """The checkpoint in ``folder`` (None when there is none); another configuration's raises."""
    path = Path(folder) / FILE
    if not path.is_file():
        return None
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("fingerprint") != key:
        raise LorasearchError(
            f"checkpoint {path} was written by another configuration; "
            "delete it or give this run another folder"
        )
    return payload


def restore(
    payload: dict[str, Any], model: nn.Module, adapter: Adapter, stepper: Stepper
) -> LoopState:
    """Put a loaded checkpoint into a freshly built run; returns its ``LoopState``."""
    adapter.load_checkpoint_state(model, payload["weights"])
    adapter.load_training_state(model, payload["adapter"])
    stepper.optimizer.load_state_dict(payload["optimizer"])
    stepper.scheduler.load_state_dict(payload["scheduler"])
    _set_rng_state(payload["rng"], _device(model))
    return LoopState(**payload["loop"])


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)

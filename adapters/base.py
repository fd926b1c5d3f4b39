"""The one small interface every adapter variant implements.

A variant is an :class:`Adapter` subclass with a config dataclass. The trainer only ever calls:

- :meth:`Adapter.prepare` once before injection (a preliminary pass on a data sample, e.g. LoRA-drop),
- :meth:`Adapter.inject` to wrap the frozen model,
- :meth:`Adapter.param_groups` for the optimizer (groups may carry their own learning rates),
- :meth:`Adapter.before_step` / :meth:`Adapter.after_step` around each optimizer step (hooks that
  may read gradients or change frozen weights, e.g. AdaLoRA, Delta-LoRA),
- :meth:`Adapter.checkpoint_state` / :meth:`Adapter.load_checkpoint_state` to keep the best-on-dev
  weights, :meth:`Adapter.counts` and :meth:`Adapter.export`,
- :meth:`Adapter.training_state` / :meth:`Adapter.load_training_state` for a resumable checkpoint
  (``training/checkpoint.py``): state besides the weights that later steps read (AdaLoRA's).

The class also describes itself, so nothing else keeps a table keyed by variant name: a one-line
``description``, the ``search_knobs`` and their ranges, :meth:`Adapter.from_search` (searched
values -> its own knobs), and how its export loads (``load_code``, :meth:`Adapter.load_export`).
Register it with one line in ``lorasearch.adapters`` (``register``).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from lorasearch.adapters.knobs import LR, Knob, choice
from lorasearch.adapters.placement import (
    LAYER_CHOICES,
    TARGET_GROUPS,
    check_layers,
    check_targets,
    normalize_layers,
)
from lorasearch.adapters.placement import place as place_modules
from lorasearch.errors import LorasearchError

PEFT_LOAD_CODE = "from peft import PeftModel\nmodel = PeftModel.from_pretrained(base, ADAPTER_DIR)"


@dataclass
class AdapterConfig:
    """The knob every variant has; subclasses add their own and validate in ``__post_init__``.

    The default learning rate suits short budgets (a few hundred steps): on SST-2 with MiniLM,
    LoRA r=8 for 300 steps, 1e-3 beat 5e-4 on dev and test over three seeds.
    """

    lr: float = 1e-3
    # Where to adapt (adapters/placement.py): a target group and a layer spec; "all" and "all"
    # adapt every projection the model loader found.
    targets: str = "all"
    layers: str = "all"

    def __post_init__(self) -> None:
        check(0.0 < self.lr < 1.0, f"lr must be in (0, 1), got {self.lr}")
        check_targets(self.targets)
        self.layers = normalize_layers(self.layers)
        check_layers(self.layers)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def knob_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


# The placement knobs every placeable variant's search draws after its own (most to fewest
# parameters, as Knob.choices wants).
PLACEMENT_KNOBS: dict[str, Knob] = {
    "targets": choice(*TARGET_GROUPS),
    "layers": choice(*LAYER_CHOICES),
}


def check(condition: bool, message: str) -> None:
    """Raise a user error with ``message`` unless ``condition`` holds (knob validation)."""
    if not condition:
        raise LorasearchError(message)


@dataclass(frozen=True)
class ParamCounts:
    """Parameter counts: trained adapter tensors, the task head, and what an export stores."""

    adapter: int
    head: int
    stored: int

    @property
    def trainable(self) -> int:
        return self.adapter + self.head


class SampleTrainer(Protocol):
    """What the trainer lends a variant for a preliminary pass on part of the train split."""

    def sample(self, fraction: float) -> list[int]:
        """A seeded, label-stratified ``fraction`` of the train split (indices)."""

    def fit(self, model: nn.Module, adapter: Adapter, indices: list[int], steps: int) -> None:
        """Train ``model`` (already injected by ``adapter``) for ``steps`` on ``indices``."""

    def batches(self, indices: list[int]) -> Iterator[dict]:
        """Model-ready batches (on the device, with ``attention_mask``) covering ``indices``."""


@dataclass
class InjectContext:
    """What a variant needs to wrap a model: where the head is, what to adapt, the budget."""

    head_modules: list[str]
    target_modules: list[str]
    seed: int
    total_steps: int = 0
    sample_trainer: SampleTrainer | None = None


class Adapter(ABC):
    """One adapter variant: how it wraps a model, trains, counts and exports, and what it is."""

    name: ClassVar[str]
    description: ClassVar[str]  # one line, printed by `lorasearch variants`
    config_class: ClassVar[type[AdapterConfig]] = AdapterConfig
    # What the search draws, in this order (the order is part of a seeded study's draws).
    search_knobs: ClassVar[dict[str, Knob]] = {"lr": LR}
    load_code: ClassVar[str] = PEFT_LOAD_CODE  # the model card's lines loading an export
    # Whether the variant adapts the projections it is given, so ``targets`` and ``layers`` (the
    # placement knobs) may choose them; the search then draws both after ``search_knobs``.
    placeable: ClassVar[bool] = True

    @classmethod
    def from_search(cls, drawn: dict[str, Any], total_steps: int) -> dict[str, Any]:
        """Searched values -> this variant's knobs (a fraction of the run becomes steps, …)."""
        return dict(drawn)

    @classmethod
    def for_steps(cls, knobs: dict[str, Any], searched: int, steps: int) -> dict[str, Any]:
        """Knobs a search made for runs of ``searched`` steps, for a run of ``steps`` (a refit):
        a knob that counts steps keeps its fraction of the run."""
        return dict(knobs)

    @classmethod
    def space_knobs(cls) -> set[str]:
        """The knobs a space file may set: the config's, plus search-only ones."""
        names = set(cls.config_class.knob_names()) | set(cls.search_knobs)
        return names if cls.placeable else names - set(PLACEMENT_KNOBS)

    @classmethod
    def all_search_knobs(cls) -> dict[str, Knob]:
        """What the search draws, in order: ``search_knobs``, then (placeable) the placement."""
        return dict(cls.search_knobs) | (dict(PLACEMENT_KNOBS) if cls.placeable else {})

    @classmethod
    def load_export(cls, base_model: nn.Module, directory: str | Path) -> nn.Module:
        """An export of this variant on ``base_model``, ready for inference."""
        from peft import PeftModel

        return PeftModel.from_pretrained(base_model, str(directory))

    def __init__(self, config: AdapterConfig):
        self.config = config
        self.preliminary_steps = 0  # training steps spent before the main run (part of its cost)

    @classmethod
    def from_knobs(cls, **knobs: Any) -> Adapter:
        """Build from knob values, rejecting names this variant does not have."""
        unknown = sorted(set(knobs) - set(cls.config_class.knob_names()))
        if unknown:
            raise LorasearchError(
                f"variant '{cls.name}' has no knob {', '.join(unknown)}; "
                f"its knobs: {', '.join(cls.config_class.knob_names())}"
            )
        return cls(cls.config_class(**knobs))

    def placed_targets(self, target_modules: list[str]) -> list[str]:
        """The projections this configuration adapts among the model's ``target_modules``: the
        one place placement is applied (trainer, planned counts and benchmarks build their
        ``InjectContext`` from it)."""
        if not self.placeable:
            check(
                (self.config.targets, self.config.layers) == ("all", "all"),
                f"variant '{self.name}' does not take targets/layers",
            )
            return list(target_modules)
        return place_modules(list(target_modules), self.config.targets, self.config.layers)

    # --- lifecycle ------------------------------------------------------------------------------

    def prepare(self, model: nn.Module, context: InjectContext) -> None:
        """A preliminary pass before :meth:`inject`; most variants need none."""

    @abstractmethod
    def inject(self, model: nn.Module, context: InjectContext) -> nn.Module:
        """Wrap the frozen ``model``; return the module to train (adapter and head trainable)."""

    def param_groups(self, model: nn.Module) -> list[dict]:
        """Optimizer parameter groups; by default one group at ``config.lr``."""
        params = [p for p in model.parameters() if p.requires_grad]
        return [{"params": params, "lr": self.config.lr, "name": "adapter+head"}]

    def before_step(self, model: nn.Module, step: int) -> None:
        """Called after backward and clipping, just before ``optimizer.step()``."""

    def after_step(self, model: nn.Module, step: int) -> None:
        """Called after ``optimizer.step()``, before gradients are cleared."""

    def selectable(self, step: int) -> bool:
        """Whether the weights at ``step`` may become the best-on-dev checkpoint."""
        return True

    def checkpoint_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Copies of every tensor training changed (trainable ones by default)."""
        return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    def load_checkpoint_state(self, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, tensor in state.items():
                params[name].copy_(tensor)

    def training_state(self, model: nn.Module) -> dict[str, Any]:
        """What later steps read besides the weights and the optimizer (a resumed run needs it):
        tensors and plain values only. None by default."""
        return {}

    def load_training_state(self, model: nn.Module, state: dict[str, Any]) -> None:
        """Put :meth:`training_state`'s output back into a freshly injected ``model``."""

    # --- accounting and export ------------------------------------------------------------------

    @abstractmethod
    def counts(self, model: nn.Module, context: InjectContext) -> ParamCounts:
        """Exact adapter, head and stored parameter counts of the injected ``model``."""

    @abstractmethod
    def export(self, model: nn.Module, directory: Path) -> None:
        """Write the trained adapter (and head) to ``directory``."""

    def planning_adapter(self) -> Adapter:
        """A fresh adapter whose injected counts are this configuration's, known before training.

        Variants whose final shape depends on training (LoRA-drop) return their upper bound.
        """
        return type(self)(copy.deepcopy(self.config))

    def hyperparameters(self) -> dict[str, Any]:
        return self.config.to_dict()

    def details(self, model: nn.Module) -> dict[str, Any]:
        """Variant-specific facts about the trained adapter (final ranks, kept modules …)."""
        return {}


def head_param_count(model: nn.Module, head_modules: list[str]) -> int:
    """Trainable parameters that belong to the task head (however the model wraps it)."""
    total = 0
    for name, param in model.named_parameters():
        if param.requires_grad and _in_head(name, head_modules):
            total += param.numel()
    return total


def _in_head(param_name: str, head_modules: list[str]) -> bool:
    return unwrapped_name(param_name).split(".")[0] in head_modules


PEFT_PREFIX = "base_model.model."


def unwrapped_name(peft_name: str) -> str:
    """A module or parameter name inside a PEFT model, as it is named in the base model."""
    return peft_name.removeprefix(PEFT_PREFIX)


def write_metadata(directory: Path, metadata: dict[str, Any]) -> None:
    """The sidecar every export carries: variant, knobs, label mapping, metrics, base model."""
    (directory / "lorasearch.json").write_text(json.dumps(metadata, indent=2, sort_keys=True))

"""Delta-LoRA [Zi et al. 2023]: LoRA that also moves the frozen weight.

After each optimizer step t ≥ ``delta_start``: W ← W + λ·(s·B₍ₜ₊₁₎A₍ₜ₊₁₎ − s·BₜAₜ). There is no
dropout on the LoRA branch (the update assumes the branch computes exactly s·B·A·x), and only A
and B have optimizer state. Because W changes, the export carries the changed weights; load it
with :func:`load_delta_lora`.

PiSSA and OLoRA need no conversion here: the export stores every adapted W as trained (W_res
plus λ times the moves) and :func:`load_delta_lora` writes it over the original base before the
adapter loads; the saved config says ``init_lora_weights=True`` so that loading does not split
the base again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lorasearch.adapters.base import InjectContext, ParamCounts, check, unwrapped_name
from lorasearch.adapters.knobs import ALPHA_RATIO, LR, RANK, RSLORA, float_range
from lorasearch.adapters.lora import INIT, LoraAdapter, RankConfig, lora_layers

WEIGHTS_FILE = "delta_weights.safetensors"


@dataclass
class DeltaLoraConfig(RankConfig):
    """Rank, alpha, lr, and the Delta-LoRA update: λ and the step it starts at."""

    delta_lambda: float = 0.5
    delta_start: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            0.0 <= self.delta_lambda <= 10.0,
            f"delta_lambda must be in [0, 10], got {self.delta_lambda}",
        )
        check(self.delta_start >= 0, f"delta_start must be >= 0, got {self.delta_start}")


class DeltaLoraAdapter(LoraAdapter):
    name = "delta_lora"
    description = "Delta-LoRA [Zi et al. 2023]: LoRA that also moves the frozen weight."
    config_class = DeltaLoraConfig
    config: DeltaLoraConfig
    search_knobs = {
        "rank": RANK,
        "lr": LR,
        "delta_lambda": float_range(0.1, 2.0),
        "delta_start": float_range(0.0, 0.3, log=False),  # fraction of the run's steps
        "alpha_ratio": ALPHA_RATIO,
        "rslora": RSLORA,
        "init": INIT,
    }
    load_code = (
        "from lorasearch.adapters import load_delta_lora\n"
        "model = load_delta_lora(base, ADAPTER_DIR)  # writes the moved weights, then PEFT"
    )

    @classmethod
    def from_search(cls, drawn: dict[str, Any], total_steps: int) -> dict[str, Any]:
        """A searched ``delta_start`` is a fraction of the run; the knob is a step."""
        knobs = super().from_search(drawn, total_steps)
        if isinstance(knobs.get("delta_start"), float):
            knobs["delta_start"] = int(knobs["delta_start"] * total_steps)
        return knobs

    @classmethod
    def for_steps(cls, knobs: dict[str, Any], searched: int, steps: int) -> dict[str, Any]:
        """``delta_start`` keeps its fraction of the run (a refit twice as long starts W's
        updates twice as late, as a search with that budget would have drawn it)."""
        knobs = dict(knobs)
        if "delta_start" in knobs and steps != searched:
            knobs["delta_start"] = int(knobs["delta_start"] * steps / searched)
        return knobs

    @classmethod
    def load_export(cls, base_model: nn.Module, directory: str | Path) -> nn.Module:
        return load_delta_lora(base_model, directory)

    def peft_overrides(self) -> dict:
        return {"lora_dropout": 0.0}

    def inject(self, model: nn.Module, context: InjectContext) -> nn.Module:
        model = super().inject(model, context)
        self._layers = lora_layers(model)
        self._before: dict[str, torch.Tensor] = {}
        return model

    def before_step(self, model: nn.Module, step: int) -> None:
        if step >= self.config.delta_start:
            self._before = {name: delta(layer) for name, layer in self._layers.items()}

    def after_step(self, model: nn.Module, step: int) -> None:
        if step < self.config.delta_start:
            return
        with torch.no_grad():
            for name, layer in self._layers.items():
                change = delta(layer) - self._before[name]
                layer.base_layer.weight.add_(change, alpha=self.config.delta_lambda)
        self._before = {}

    def checkpoint_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        state = super().checkpoint_state(model)
        for name, layer in self._layers.items():
            state[f"{name}.base_layer.weight"] = layer.base_layer.weight.detach().clone()
        return state

    def counts(self, model: nn.Module, context: InjectContext) -> ParamCounts:
        counts = super().counts(model, context)
        changed = sum(layer.base_layer.weight.numel() for layer in self._layers.values())
        return ParamCounts(counts.adapter, counts.head, counts.stored + changed)

    def converts_export(self) -> bool:
        return False  # the export carries the whole trained W (see the module's docstring)

    def export(self, model: nn.Module, directory: Path) -> None:
        config = model.peft_config["default"]
        init, config.init_lora_weights = config.init_lora_weights, True
        try:
            super().export(model, directory)
        finally:
            config.init_lora_weights = init
        weights = {
            f"{unwrapped_name(name)}.weight": layer.base_layer.weight.detach().contiguous().cpu()
            for name, layer in self._layers.items()
        }
        save_file(weights, str(directory / WEIGHTS_FILE))


def delta(layer: nn.Module) -> torch.Tensor:
    """s·B·A in the base weight's layout (PEFT transposes it for GPT-2's Conv1D)."""
    with torch.no_grad():
        return layer.get_delta_weight("default").detach().clone()


def load_delta_lora(base: nn.Module, directory: str | Path) -> nn.Module:
    """A Delta-LoRA export on ``base``: the changed weights written in, then the adapter loaded."""
    from peft import PeftModel

    directory = Path(directory)
    weights = load_file(str(directory / WEIGHTS_FILE))
    params = dict(base.named_parameters())
    missing = sorted(set(weights) - set(params))
    if missing:
        raise ValueError(f"{directory} does not match this base model (no {missing[0]})")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    meta = directory / "lorasearch.json"
    if meta.is_file() and json.loads(meta.read_text()).get("variant") != "delta_lora":
        raise ValueError(f"{directory} is not a Delta-LoRA export")
    return PeftModel.from_pretrained(base, str(directory))

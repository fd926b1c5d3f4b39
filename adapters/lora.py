"""LoRA [Hu et al. 2021]: ΔW = (α/r)·B·A, A Kaiming-uniform, B = 0 — PEFT's ``LoraConfig``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lorasearch.adapters.base import (
    Adapter,
    AdapterConfig,
    InjectContext,
    ParamCounts,
    check,
    head_param_count,
)


@dataclass
class RankConfig(AdapterConfig):
    """Rank and scale of a B·A update. ``alpha`` None means 2·rank (scale 2)."""

    rank: int = 8
    alpha: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(isinstance(self.rank, int) and self.rank >= 1, f"rank must be >= 1, got {self.rank}")
        if self.alpha is None:
            self.alpha = 2.0 * self.rank
        check(self.alpha > 0, f"alpha must be > 0, got {self.alpha}")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@dataclass
class LoraConfig(RankConfig):
    """LoRA's knobs: rank, alpha, dropout on the branch's input, learning rate."""

    dropout: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")


class LoraAdapter(Adapter):
    """Plain LoRA through PEFT, so exports load with ``PeftModel.from_pretrained``.

    Subclasses that are LoRA with a twist (DoRA, LoRA+, LoRA-FA, Delta-LoRA, LoRA-drop) change
    :meth:`peft_overrides` or the optimizer/step hooks, not the injection.
    """

    name = "lora"
    config_class = LoraConfig
    config: LoraConfig

    def peft_overrides(self) -> dict:
        """Extra ``peft.LoraConfig`` fields this variant sets."""
        return {}

    def peft_config(self, model: nn.Module, context: InjectContext):
        from peft import LoraConfig as PeftLoraConfig
        from peft import TaskType

        knobs = dict(
            r=self.config.rank,
            lora_alpha=self.config.alpha,
            lora_dropout=getattr(self.config, "dropout", 0.0),
            target_modules=list(context.target_modules),
            modules_to_save=list(context.head_modules),
            fan_in_fan_out=uses_conv1d(model, context.target_modules),
            task_type=TaskType.SEQ_CLS,
        )
        return PeftLoraConfig(**(knobs | self.peft_overrides()))

    def inject(self, model: nn.Module, context: InjectContext) -> nn.Module:
        from peft import get_peft_model

        torch.manual_seed(context.seed)  # A's Kaiming init draws from the global generator
        return get_peft_model(model, self.peft_config(model, context))

    def counts(self, model: nn.Module, context: InjectContext) -> ParamCounts:
        head = head_param_count(model, context.head_modules)
        adapter = sum(p.numel() for p in model.parameters() if p.requires_grad) - head
        return ParamCounts(adapter=adapter, head=head, stored=adapter + head)

    def export(self, model: nn.Module, directory: Path) -> None:
        model.save_pretrained(str(directory))


def uses_conv1d(model: nn.Module, targets: list[str]) -> bool:
    """GPT-2's Conv1D stores weights transposed; PEFT must be told (fan_in_fan_out)."""
    return any(type(model.get_submodule(t)).__name__ == "Conv1D" for t in targets)


def lora_layers(model: nn.Module) -> dict[str, nn.Module]:
    """PEFT's LoRA-wrapped layers by module name (those with ``lora_A``)."""
    return {
        name: module
        for name, module in model.named_modules()
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {})
    }

"""LoRA [Hu et al. 2021]: ΔW = (α/r)·B·A, A Kaiming-uniform, B = 0 — PEFT's ``LoraConfig``."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lorasearch.adapters.base import AdapterConfig, InjectContext, check
from lorasearch.adapters.knobs import LR, RANK
from lorasearch.adapters.peft_base import PeftAdapter, peft_fields


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


class LoraAdapter(PeftAdapter):
    """Plain LoRA through PEFT, so exports load with ``PeftModel.from_pretrained``.

    Subclasses that are LoRA with a twist (DoRA, LoRA+, LoRA-FA, Delta-LoRA, LoRA-drop) change
    :meth:`peft_overrides` or the optimizer/step hooks, not the injection.
    """

    name = "lora"
    description = (
        "LoRA [Hu et al. 2021]: ΔW = (α/r)·B·A, A Kaiming-uniform, B = 0 — PEFT's LoraConfig."
    )
    config_class = LoraConfig
    config: LoraConfig
    search_knobs = {"rank": RANK, "lr": LR}

    def peft_overrides(self) -> dict:
        """Extra ``peft.LoraConfig`` fields this variant sets."""
        return {}

    def peft_config(self, model: nn.Module, context: InjectContext):
        from peft import LoraConfig as PeftLoraConfig

        knobs = peft_fields(model, context) | dict(
            r=self.config.rank,
            lora_alpha=self.config.alpha,
            lora_dropout=getattr(self.config, "dropout", 0.0),
        )
        return PeftLoraConfig(**(knobs | self.peft_overrides()))


def lora_layers(model: nn.Module) -> dict[str, nn.Module]:
    """PEFT's LoRA-wrapped layers by module name (those with ``lora_A``)."""
    return {
        name: module
        for name, module in model.named_modules()
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {})
    }

"""VeRA [Kopiczko et al. 2023]: ΔW·x = Λ_b·B·Λ_d·A·x with one frozen random pair A, B shared
by all layers (regenerated from a seed) and only the vectors d ∈ R^r, b ∈ R^{d_out} trained —
PEFT's ``VeraConfig``.
"""

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
from lorasearch.adapters.lora import uses_conv1d


@dataclass
class VeraConfig(AdapterConfig):
    """VeRA's knobs; its vectors want about 10× LoRA's learning rate."""

    lr: float = 1e-2
    vera_rank: int = 256
    d_init: float = 0.1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            isinstance(self.vera_rank, int) and self.vera_rank >= 1,
            f"vera_rank must be >= 1, got {self.vera_rank}",
        )
        check(0.0 < self.d_init <= 10.0, f"d_init must be in (0, 10], got {self.d_init}")
        check(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")


class VeraAdapter(Adapter):
    name = "vera"
    config_class = VeraConfig
    config: VeraConfig

    def peft_config(self, model: nn.Module, context: InjectContext):
        from peft import TaskType
        from peft import VeraConfig as PeftVeraConfig

        return PeftVeraConfig(
            r=self.config.vera_rank,
            d_initial=self.config.d_init,
            vera_dropout=self.config.dropout,
            projection_prng_key=context.seed,
            save_projection=False,  # the export stores the seed, not A and B
            target_modules=list(context.target_modules),
            modules_to_save=list(context.head_modules),
            fan_in_fan_out=uses_conv1d(model, context.target_modules),
            task_type=TaskType.SEQ_CLS,
        )

    def inject(self, model: nn.Module, context: InjectContext) -> nn.Module:
        from peft import get_peft_model

        torch.manual_seed(context.seed)
        return get_peft_model(model, self.peft_config(model, context))

    def counts(self, model: nn.Module, context: InjectContext) -> ParamCounts:
        head = head_param_count(model, context.head_modules)
        vectors = sum(p.numel() for p in model.parameters() if p.requires_grad) - head
        return ParamCounts(adapter=vectors, head=head, stored=vectors + head)

    def export(self, model: nn.Module, directory: Path) -> None:
        model.save_pretrained(str(directory))

"""VeRA [Kopiczko et al. 2023]: ΔW·x = Λ_b·B·Λ_d·A·x with one frozen random pair A, B shared
by all layers (regenerated from a seed) and only the vectors d ∈ R^r, b ∈ R^{d_out} trained —
PEFT's ``VeraConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from lorasearch.adapters.base import AdapterConfig, InjectContext, check
from lorasearch.adapters.knobs import float_range, int_range
from lorasearch.adapters.peft_base import PeftAdapter, peft_fields


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


class VeraAdapter(PeftAdapter):
    name = "vera"
    description = "VeRA [Kopiczko et al. 2023]: ΔW·x = Λ_b·B·Λ_d·A·x, one frozen random A, B shared by all layers."
    config_class = VeraConfig
    config: VeraConfig
    search_knobs = {
        "vera_rank": int_range(16, 1024),
        "d_init": float_range(0.01, 1.0),
        "lr": float_range(1e-3, 5e-2),
    }

    def peft_config(self, model: nn.Module, context: InjectContext):
        from peft import VeraConfig as PeftVeraConfig

        return PeftVeraConfig(
            r=self.config.vera_rank,
            d_initial=self.config.d_init,
            vera_dropout=self.config.dropout,
            projection_prng_key=context.seed,
            save_projection=False,  # the export stores the seed, not A and B
            **peft_fields(model, context),
        )

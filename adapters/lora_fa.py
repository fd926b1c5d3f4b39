"""LoRA-FA [Zhang et al. 2023]: A frozen after its init, only B (and the head) trained.

With ``init`` pissa or olora the frozen A holds the weight's principal directions (√σ·vᵀ for
PiSSA, OLoRA's rows of R) and only B moves.

With A frozen, autograd keeps only the r-dimensional A·x for B's gradient instead of the layer
input x, which is where the activation-memory saving comes from.
"""

from __future__ import annotations

from torch import nn

from lorasearch.adapters.base import InjectContext, ParamCounts
from lorasearch.adapters.lora import LoraAdapter, lora_layers


class LoraFaAdapter(LoraAdapter):
    name = "lora_fa"
    description = (
        "LoRA-FA [Zhang et al. 2023]: A frozen after its init, only B (and the head) trained."
    )

    def inject(self, model: nn.Module, context: InjectContext) -> nn.Module:
        model = super().inject(model, context)
        for layer in lora_layers(model).values():
            layer.lora_A["default"].weight.requires_grad_(False)
        return model

    def counts(self, model: nn.Module, context: InjectContext) -> ParamCounts:
        """Trained: B. Stored: B and the frozen A (with PiSSA/OLoRA, also the conversion's B₀, A₀)."""
        counts = super().counts(model, context)
        frozen_a = sum(
            layer.lora_A["default"].weight.numel() for layer in lora_layers(model).values()
        )
        return ParamCounts(counts.adapter, counts.head, counts.stored + frozen_a)

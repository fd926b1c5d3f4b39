"""LoRA-FA [Zhang et al. 2023]: A frozen after its random init, only B (and the head) trained.

With A frozen, autograd keeps only the r-dimensional A·x for B's gradient instead of the layer
input x, which is where the activation-memory saving comes from.
"""

from __future__ import annotations

from torch import nn

from lorasearch.adapters.base import InjectContext, ParamCounts, head_param_count
from lorasearch.adapters.lora import LoraAdapter, lora_layers


class LoraFaAdapter(LoraAdapter):
    name = "lora_fa"
    description = "LoRA-FA [Zhang et al. 2023]: A frozen after its random init, only B (and the head) trained."

    def inject(self, model: nn.Module, context: InjectContext) -> nn.Module:
        model = super().inject(model, context)
        for layer in lora_layers(model).values():
            layer.lora_A["default"].weight.requires_grad_(False)
        return model

    def counts(self, model: nn.Module, context: InjectContext) -> ParamCounts:
        head = head_param_count(model, context.head_modules)
        trained_b = sum(p.numel() for p in model.parameters() if p.requires_grad) - head
        frozen_a = sum(
            layer.lora_A["default"].weight.numel() for layer in lora_layers(model).values()
        )
        return ParamCounts(adapter=trained_b, head=head, stored=trained_b + frozen_a + head)

"""The shared base of variants that are one PEFT tuner (LoRA and its twists, VeRA, AdaLoRA).

Such a variant only says which PEFT config its knobs make; PEFT injects it (seeded), the counts
are PEFT's trainable tensors, and the export is PEFT's own folder, which ``PeftModel`` loads.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lorasearch.adapters.base import Adapter, InjectContext, ParamCounts, head_param_count


class PeftAdapter(Adapter):
    """A variant backed by one PEFT tuner: subclasses write :meth:`peft_config`."""

    @abstractmethod
    def peft_config(self, model: nn.Module, context: InjectContext):
        """The ``peft`` config this configuration makes; start from :func:`peft_fields`."""

    def inject(self, model: nn.Module, context: InjectContext) -> nn.Module:
        from peft import get_peft_model

        # PEFT's inits (LoRA's Kaiming A, VeRA's vectors, AdaLoRA's P, Q) use the global generator.
        torch.manual_seed(context.seed)
        return get_peft_model(model, self.peft_config(model, context))

    def counts(self, model: nn.Module, context: InjectContext) -> ParamCounts:
        head = head_param_count(model, context.head_modules)
        adapter = sum(p.numel() for p in model.parameters() if p.requires_grad) - head
        return ParamCounts(adapter=adapter, head=head, stored=adapter + head)

    def export(self, model: nn.Module, directory: Path) -> None:
        model.save_pretrained(str(directory))


def peft_fields(model: nn.Module, context: InjectContext) -> dict[str, Any]:
    """The fields every PEFT config here shares: what to adapt, the trained head, the task."""
    from peft import TaskType

    return dict(
        target_modules=list(context.target_modules),
        modules_to_save=list(context.head_modules),
        fan_in_fan_out=uses_conv1d(model, context.target_modules),
        task_type=TaskType.SEQ_CLS,
    )


def uses_conv1d(model: nn.Module, targets: list[str]) -> bool:
    """GPT-2's Conv1D stores weights transposed; PEFT must be told (fan_in_fan_out)."""
    return any(type(model.get_submodule(t)).__name__ == "Conv1D" for t in targets)

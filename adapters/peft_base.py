"""The shared base of variants that are one PEFT tuner (LoRA and its twists, VeRA, AdaLoRA).

Such a variant only says which PEFT config its knobs make; PEFT injects it (seeded), the counts
are PEFT's trainable tensors, and the export is PEFT's own folder, which ``PeftModel`` loads.

An init that rewrites the frozen base weights (PiSSA, OLoRA: W_res = W − s·B₀·A₀) is exported
through PEFT's conversion (``save_pretrained(path_initial_model_for_weight_conversion=…)``):
ΔW = s·B·A − s·B₀·A₀ = s·[B | −B₀]·[A ; A₀], a rank-2r LoRA (α doubled, or ×√2 with rsLoRA)
of the ORIGINAL weights. It needs the adapter as injected, before any training step: the
adapter keeps that state in memory from :meth:`PeftAdapter.inject` (a resumed run re-injects,
deterministically, so it has the same one) and writes it to a temporary folder at export.
"""

from __future__ import annotations

import tempfile
from abc import abstractmethod
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lorasearch.adapters.base import Adapter, InjectContext, ParamCounts, head_param_count

WEIGHTS_FILE = "adapter_model.safetensors"  # PEFT's SAFETENSORS_WEIGHTS_NAME


class PeftAdapter(Adapter):
    """A variant backed by one PEFT tuner: subclasses write :meth:`peft_config`."""

    @abstractmethod
    def peft_config(self, model: nn.Module, context: InjectContext):
        """The ``peft`` config this configuration makes; start from :func:`peft_fields`."""

    def changes_base_weights(self) -> bool:
        """Whether injection rewrites the frozen base weights (PiSSA, OLoRA)."""
        return False

    def converts_export(self) -> bool:
        """Whether the export is converted to an adapter of the original base weights."""
        return self.changes_base_weights()

    def inject(self, model: nn.Module, context: InjectContext) -> nn.Module:
        from peft import get_peft_model
        from peft.utils import get_peft_model_state_dict

        # PEFT's inits (LoRA's Kaiming A, VeRA's vectors, AdaLoRA's P, Q) use the global generator.
        torch.manual_seed(context.seed)
        model = get_peft_model(model, self.peft_config(model, context))
        if self.converts_export():
            initial = get_peft_model_state_dict(model)
            self.initial_state = {k: v.detach().cpu().clone() for k, v in initial.items()}
        return model

    def counts(self, model: nn.Module, context: InjectContext) -> ParamCounts:
        head = head_param_count(model, context.head_modules)
        adapter = sum(p.numel() for p in model.parameters() if p.requires_grad) - head
        return ParamCounts(adapter=adapter, head=head, stored=adapter + head)

    def export(self, model: nn.Module, directory: Path) -> None:
        if self.converts_export():
            save_converted(model, self.initial_state, Path(directory))
        else:
            model.save_pretrained(str(directory))


def save_converted(model: nn.Module, initial_state: dict[str, torch.Tensor], directory: Path):
    """PEFT's conversion of a PiSSA/OLoRA adapter to one of the original base weights.

    PEFT's converted state dict holds only the lora_A/lora_B tensors: it drops the head
    (``modules_to_save``) and DoRA's magnitude, which we put back unchanged (neither depends on
    the base weights' split).
    """
    from peft.utils import get_peft_model_state_dict

    with tempfile.TemporaryDirectory() as tmp:
        initial = Path(tmp) / "initial"  # PEFT names the temporary adapter after the folder
        initial.mkdir()
        save_file(
            {k: v.contiguous() for k, v in initial_state.items()}, str(initial / WEIGHTS_FILE)
        )
        model.save_pretrained(str(directory), path_initial_model_for_weight_conversion=str(initial))
    saved = load_file(str(directory / WEIGHTS_FILE))
    full = get_peft_model_state_dict(model)
    dropped = {k: v.detach().cpu().contiguous() for k, v in full.items() if k not in saved}
    save_file(saved | dropped, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})


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

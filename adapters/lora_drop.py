"""LoRA-drop [Zhou et al. 2024]: keep own LoRA only where its output matters; share the rest.

1. Train LoRA on every target for ``drop_steps`` on a label-stratified ``drop_sample`` of train.
2. Importance of each adapted module: Iᵢ = Σ over the sample's tokens ‖s·Bᵢ·Aᵢ·xᵢ‖², then ΣIᵢ = 1.
3. Sorted by importance, modules keep their own LoRA until the cumulative sum reaches
   ``drop_threshold``.
4. The remaining modules share one LoRA per weight shape (one A and one B tensor, trained).
5. The main run trains the kept and the shared LoRAs on all data.

Scoring is per module (the paper's unit is a layer's LoRA; per module is the natural finer
option it names). The export is a PEFT LoRA folder in which each shared tensor is written out
once per module that uses it, so it loads with ``PeftModel.from_pretrained``; ``stored`` counts
the shared tensors once, as the information the adapter holds.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from lorasearch.adapters.base import InjectContext, ParamCounts, check, unwrapped_name
from lorasearch.adapters.knobs import ALPHA_RATIO, LR, RANK, RSLORA, choice, float_range
from lorasearch.adapters.lora import LoraAdapter, LoraConfig, lora_layers
from lorasearch.errors import LorasearchError


@dataclass
class LoraDropConfig(LoraConfig):
    """LoRA's knobs plus the threshold T, the sample fraction and the preliminary steps."""

    drop_threshold: float = 0.9
    drop_sample: float = 0.1
    drop_steps: int | None = None  # None: 10% of the main run's steps, at least 10

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            0.0 < self.drop_threshold <= 1.0,
            f"drop_threshold must be in (0, 1], got {self.drop_threshold}",
        )
        check(
            0.0 < self.drop_sample <= 1.0, f"drop_sample must be in (0, 1], got {self.drop_sample}"
        )
        check(
            self.drop_steps is None or self.drop_steps >= 1,
            f"drop_steps must be >= 1, got {self.drop_steps}",
        )


class LoraDropAdapter(LoraAdapter):
    name = "lora_drop"
    description = (
        "LoRA-drop [Zhou et al. 2024]: keep own LoRA only where its output matters; share the rest."
    )
    config_class = LoraDropConfig
    config: LoraDropConfig
    # The draw order predates alpha_ratio, rslora and init: they come after drop_threshold.
    search_knobs = {
        "rank": RANK,
        "lr": LR,
        "drop_threshold": float_range(0.5, 0.99, log=False),
        "alpha_ratio": ALPHA_RATIO,
        "rslora": RSLORA,
        "init": choice("kaiming", "gaussian"),
    }
    # Not PiSSA/OLoRA: they split each module's own W into W_res + s·B₀·A₀, and a LoRA shared by
    # several modules cannot hold each one's B₀·A₀.
    inits = ("kaiming", "gaussian")

    def __init__(self, config: LoraDropConfig):
        super().__init__(config)
        self.importance: dict[str, float] = {}
        self.kept: list[str] = []

    def preliminary_step_count(self, total_steps: int) -> int:
        return self.config.drop_steps or max(10, total_steps // 10)

    def planning_adapter(self) -> LoraAdapter:
        """Before the preliminary pass the kept set is unknown: every module kept is the bound."""
        return self._plain_lora()

    def _plain_lora(self) -> LoraAdapter:
        """LoRA with every LoRA knob of this configuration, the placement included."""
        knobs = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(LoraConfig)}
        return LoraAdapter(LoraConfig(**knobs))

    def prepare(self, model: nn.Module, context: InjectContext) -> None:
        if context.sample_trainer is None:
            raise LorasearchError("lora_drop needs training data for its preliminary pass")
        trainer = context.sample_trainer
        sample = trainer.sample(self.config.drop_sample)
        steps = self.preliminary_step_count(context.total_steps)
        probe = self._plain_lora()
        trial_model = probe.inject(copy.deepcopy(model), context)
        trainer.fit(trial_model, probe, sample, steps)
        self.preliminary_steps = steps
        self.importance = module_importance(trial_model, trainer.batches(sample))
        self.kept = select_modules(self.importance, self.config.drop_threshold)

    def inject(self, model: nn.Module, context: InjectContext) -> nn.Module:
        model = super().inject(model, context)
        kept = set(self.kept)
        shared: dict[tuple[int, int], tuple[nn.Parameter, nn.Parameter]] = {}
        for name, layer in lora_layers(model).items():
            if unwrapped_name(name) in kept:
                continue
            a, b = layer.lora_A["default"], layer.lora_B["default"]
            shape = (a.in_features, b.out_features)
            if shape not in shared:
                shared[shape] = (a.weight, b.weight)  # the first one's fresh init becomes shared
            a.weight, b.weight = shared[shape]
        self.shared_shapes = sorted(shared)
        return model

    def counts(self, model: nn.Module, context: InjectContext) -> ParamCounts:
        counts = super().counts(model, context)  # model.parameters() yields a shared tensor once
        return ParamCounts(counts.adapter, counts.head, counts.adapter + counts.head)

    def details(self, model: nn.Module) -> dict:
        return {
            "importance": self.importance,
            "kept_modules": self.kept,
            "shared_shapes": [list(shape) for shape in self.shared_shapes],
        }


def module_importance(model: nn.Module, batches) -> dict[str, float]:
    """Σ‖s·B·A·x‖² per LoRA module over the real (unpadded) tokens of ``batches``, normalised.

    A module that sees one vector per example (BERT's pooler) sums over examples.
    """
    layers = lora_layers(model)
    totals = {name: 0.0 for name in layers}
    state: dict[str, torch.Tensor] = {}

    def hook(name):
        def record(layer, inputs, _output):
            x = inputs[0]
            update = layer.lora_B["default"](layer.lora_A["default"](x)) * layer.scaling["default"]
            per_token = update.float().pow(2).sum(dim=-1)
            if per_token.dim() == 2:  # (batch, tokens): count only real tokens
                per_token = per_token * state["mask"]
            totals[name] += float(per_token.sum())  # (batch,): one vector per example (pooler)

        return record

    handles = [layer.register_forward_hook(hook(name)) for name, layer in layers.items()]
    model.eval()
    try:
        with torch.inference_mode():
            for batch in batches:
                state["mask"] = batch["attention_mask"].to(torch.float32)
                model(**{k: v for k, v in batch.items() if k != "labels"})
    finally:
        for handle in handles:
            handle.remove()
    total = sum(totals.values()) or 1.0
    return {unwrapped_name(name): value / total for name, value in totals.items()}


def select_modules(importance: dict[str, float], threshold: float) -> list[str]:
    """Most important first, until their cumulative importance reaches ``threshold``."""
    kept, cumulative = [], 0.0
    for name, value in sorted(importance.items(), key=lambda item: -item[1]):
        if cumulative >= threshold:
            break
        kept.append(name)
        cumulative += value
    return kept

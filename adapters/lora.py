"""LoRA [Hu et al. 2021]: ΔW = (α/r)·B·A, A Kaiming-uniform, B = 0 — PEFT's ``LoraConfig``.

The LoRA family (LoRA, LoRA+, LoRA-FA, DoRA, Delta-LoRA) also has rsLoRA's scale (``rslora``:
α/√r) and PEFT's initialisations (``init``). PiSSA and OLoRA move the principal part of W into
B₀·A₀ and keep W_res = W − s·B₀·A₀ as the frozen base; their exports are converted by PEFT to a
rank-2r LoRA of the original W (:class:`lorasearch.adapters.peft_base.PeftAdapter`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from lorasearch.adapters.base import AdapterConfig, InjectContext, ParamCounts, check
from lorasearch.adapters.knobs import ALPHA_RATIO, LR, RANK, RSLORA, choice
from lorasearch.adapters.peft_base import PeftAdapter, peft_fields, uses_conv1d
from lorasearch.errors import LorasearchError

# Our names -> PEFT's ``init_lora_weights``. PiSSA is the exact SVD ("pissa", not
# "pissa_niter_4"): on one CPU thread a 1536×384 MiniLM MLP weight takes 48–76 ms (r 64 / 8)
# against 12–17 ms, a 384×384 one 15 ms, so about 1 s per MiniLM trial, negligible next to its
# training steps; the exact SVD gives the true principal directions and draws no random numbers.
INIT_TO_PEFT: dict[str, bool | str] = {
    "kaiming": True,
    "gaussian": "gaussian",
    "pissa": "pissa",
    "olora": "olora",
}
# Inits that rewrite the frozen base weight (W_res = W − s·B₀·A₀).
BASE_CHANGING = ("pissa", "olora")
INIT = choice(*INIT_TO_PEFT)  # no order by size: an init does not change the parameter count


@dataclass
class RankConfig(AdapterConfig):
    """Rank and scale of a B·A update. ``alpha`` None means 2·rank (scale 2); ``rslora`` makes
    the scale α/√r (rsLoRA, PEFT's ``use_rslora``); ``init`` is how A and B start."""

    rank: int = 8
    alpha: float | None = None
    rslora: bool = False
    init: str = "kaiming"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(isinstance(self.rank, int) and self.rank >= 1, f"rank must be >= 1, got {self.rank}")
        if self.alpha is None:
            self.alpha = 2.0 * self.rank
        check(self.alpha > 0, f"alpha must be > 0, got {self.alpha}")
        check(isinstance(self.rslora, bool), f"rslora must be true or false, got {self.rslora}")
        check(
            self.init in INIT_TO_PEFT,
            f"init must be one of {', '.join(INIT_TO_PEFT)}, got {self.init}",
        )

    @property
    def scale(self) -> float:
        return self.alpha / (math.sqrt(self.rank) if self.rslora else self.rank)


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
    search_knobs = {
        "rank": RANK,
        "lr": LR,
        "alpha_ratio": ALPHA_RATIO,
        "rslora": RSLORA,
        "init": INIT,
    }
    inits: ClassVar[tuple[str, ...]] = tuple(
        INIT_TO_PEFT
    )  # the ``init`` values this variant offers

    def __init__(self, config: RankConfig):
        super().__init__(config)
        check(
            config.init in self.inits,
            f"variant '{self.name}' offers init {', '.join(self.inits)}, got {config.init}",
        )

    @classmethod
    def from_search(cls, drawn: dict[str, Any], total_steps: int) -> dict[str, Any]:
        """A searched ``alpha_ratio`` becomes ``alpha = alpha_ratio · rank``; an ``alpha`` a space
        file fixes wins over it."""
        knobs = dict(drawn)
        ratio = knobs.pop("alpha_ratio", None)
        if ratio is not None and "alpha" not in knobs:
            knobs["alpha"] = float(ratio) * knobs.get("rank", cls.config_class.rank)
        return knobs

    def peft_overrides(self) -> dict:
        """Extra ``peft.LoraConfig`` fields this variant sets."""
        return {}

    def changes_base_weights(self) -> bool:
        return self.config.init in BASE_CHANGING

    def peft_config(self, model: nn.Module, context: InjectContext):
        from peft import LoraConfig as PeftLoraConfig

        if self.config.init == "olora" and uses_conv1d(model, context.target_modules):
            # PEFT's olora_init ignores fan_in_fan_out: Conv1D's transposed weight gives A, B of
            # the wrong shapes.
            raise LorasearchError("init olora does not support GPT-2's Conv1D layers; use pissa")
        if self.config.init in ("pissa", "olora"):
            _check_rank_fits(model, context.target_modules, self.config.rank, self.config.init)
        knobs = peft_fields(model, context) | dict(
            r=self.config.rank,
            lora_alpha=self.config.alpha,
            lora_dropout=getattr(self.config, "dropout", 0.0),
            use_rslora=self.config.rslora,
            init_lora_weights=INIT_TO_PEFT[self.config.init],
        )
        return PeftLoraConfig(**(knobs | self.peft_overrides()))

    def counts(self, model: nn.Module, context: InjectContext) -> ParamCounts:
        """A converted export (PiSSA, OLoRA) stores [A | A₀] and [B | −B₀]: rank 2r."""
        counts = super().counts(model, context)
        if not self.converts_export():
            return counts
        return ParamCounts(counts.adapter, counts.head, counts.stored + lora_numel(model))


def _check_rank_fits(model: nn.Module, targets: list[str], rank: int, init: str) -> None:
    """PiSSA and OLoRA take r singular vectors (or QR columns) of each adapted W: a rank above
    min(in, out) of one of them has none to take (PEFT then builds A, B its export cannot hold)."""
    for name in targets:
        weight = model.get_submodule(name).weight
        if rank > min(weight.shape):
            raise LorasearchError(
                f"init {init} needs rank <= min(in, out) of every adapted module; rank {rank} > "
                f"{min(weight.shape)} for {name}"
            )


def lora_layers(model: nn.Module) -> dict[str, nn.Module]:
    """PEFT's LoRA-wrapped layers by module name (those with ``lora_A``)."""
    return {
        name: module
        for name, module in model.named_modules()
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {})
    }


def lora_numel(model: nn.Module) -> int:
    """Elements of every A and B (trained or frozen), each shared tensor once."""
    tensors = {}
    for layer in lora_layers(model).values():
        for weight in (layer.lora_A["default"].weight, layer.lora_B["default"].weight):
            tensors[id(weight)] = weight.numel()
    return sum(tensors.values())

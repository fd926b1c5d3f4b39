"""A searchable knob: an int or float range (optionally log-scaled), a choice, or a fixed value.

Each variant declares its own knobs with these (``Adapter.search_knobs``); ``spaces`` draws them
and narrows or fixes them from a space file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Knob:
    """One searchable knob: an int or float range (optionally log-scaled), a choice among
    ``choices`` (Optuna's categorical; ordered from most to fewest parameters where that order
    exists), or a fixed value."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    fixed: Any = None
    choices: tuple | None = None

    def __post_init__(self) -> None:
        if self.choices is not None:  # JSON round trips give lists; Optuna wants a sequence
            object.__setattr__(self, "choices", tuple(self.choices))

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        if self.fixed is not None:
            return self.fixed
        if self.choices is not None:
            return trial.suggest_categorical(name, self.choices)
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def describe(self) -> str:
        if self.fixed is not None:
            return f"= {self.fixed}"
        if self.choices is not None:
            return f"one of {', '.join(map(str, self.choices))}"
        kind = "int" if self.integer else "float"
        return f"{kind} [{self.low:g}, {self.high:g}]{' log' if self.log else ''}"


def int_range(low: int, high: int, log: bool = True) -> Knob:
    return Knob(low, high, log=log, integer=True)


def choice(*values: Any) -> Knob:
    return Knob(choices=tuple(values))


def float_range(low: float, high: float, log: bool = True) -> Knob:
    return Knob(low, high, log=log)


# Shared by the LoRA family (ranges from ../shared/docs/variants.md).
RANK = int_range(2, 64)
LR = float_range(1e-4, 5e-3)

# alpha searched as a multiple of rank (alpha = alpha_ratio · rank, i.e. the scale α/r itself).
# Published settings span it: PEFT's default α = r (1) and the LoRA paper's RoBERTa runs (r 8,
# α 8), our default 2r, the LoRA paper's GPT-2 E2E runs (r 4, α 32: 8); QLoRA's α 16 at r 64
# (0.25) shows recipes below 1, cut at 0.5 here. Not yet measured on our tasks. Log-scaled
# because the scale multiplies the update as the learning rate does.
ALPHA_RATIO = float_range(0.5, 8.0)
# rsLoRA's α/√r instead of α/r; it does not change the parameter count, so the order is free.
RSLORA = choice(False, True)

"""The search's first configurations (its initial design, on by default; ``--no-initial-design``
to leave it out): known-good recipes on a ladder of placements across the decades of trainable
params, from VeRA on one block's query/value to LoRA at rank 64 on every projection.

Why: TPE learns from the trials at the full budget R, and its first ones are small VeRAs (the
small end wins the first rungs), so it draws VeRA again and again and the front's large end
is left to chance (bench/tables/sampler_live.md): without the design, the SST-2 budget
search's front at R = 810 (bench/tables/budget_sst2_r810s.json) ends at a 104k LoRA-FA; the
one LoRA over 10^6 it drew (rank 51 on the feed-forward, OLoRA init, lr 2.4e-3) fell to the
majority class (dev 0.554). The ladder gives it, from the start, one recipe per half-decade or
so: rank 8 on query/value of every block (the LoRA paper's placement), its rank-2 form, that
on the top block alone, this project's LoRA defaults (rank 8 on every projection) and rank 64
there; below them VeRA at its defaults (rank 256, PEFT's too) on the top block's query/value,
the smallest recipe a user would try. The other knobs are each variant's defaults (LoRA: lr
1e-3, alpha 2·rank, kaiming init, no rsLoRA; VeRA: lr 1e-2, d_init 0.1). On MiniLM (SST-2's
head included) the ladder is 2,050 / 3,842 / 19,202 / 74,498 / 338,690 / 2,704,130 trainable
params: 3.12 decades.

Why by default: on SST-2 at R = 810 with one search seed each (bench/budget.py, 48
configurations, rungs from step 30), the search with this ladder (budget_sst2_default, the
default settings) had a front of 3.23 decades (VeRA 1,592 to the ladder's 2.7M LoRA, dev 0.814
to 0.900) and a hypervolume of 1.3031 for 9,324 training steps; with the LoRA ladder alone
(budget_sst2_d810) 2.93 decades (VeRA 3,180 to the same LoRA), 1.2539 for 9,165 steps; without
a design (budget_sst2_r810s) 1.64 decades (VeRA 2,374 to LoRA-FA 104k, dev 0.822 to 0.863),
1.2064 for 19,143 steps (it ran half on a GPU before the end-of-search spread existed, half on
a CPU with it). So 1.08x the hypervolume for 0.49x the steps, and twice the span. At R = 270 on
8,000 rows (bench/sampler_live.py, two seeds, bench/tables/sampler_design.md) the same ladder
lowered the hypervolume to 0.93x: trained that briefly, the LoRAs score no better than the small
VeRAs that TPE then draws less. A search that is short on steps per trial can leave it out.

A new study enqueues the ladder's points before anything is drawn (Optuna's ``enqueue_trial``;
each is one of ``--trials``); a point the space cannot draw (its variant not in ``--variants``,
a rank or lr outside a space file's range) is left out, a knob the space fixes takes its fixed
value (points that become the same are enqueued once), and under ``--max-params`` a point over
the budget is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from lorasearch.adapters.knobs import Knob
from lorasearch.adapters.lora import LoraConfig
from lorasearch.adapters.vera import VeraConfig
from lorasearch.spaces import SearchSpace

_LORA, _VERA = LoraConfig(), VeraConfig()
# Each variant's knobs its ladder points share: its defaults (adapters/lora.py, adapters/vera.py).
DEFAULTS: dict[str, dict[str, Any]] = {
    "lora": {"lr": _LORA.lr, "alpha_ratio": _LORA.alpha / _LORA.rank, "rslora": _LORA.rslora,
             "init": _LORA.init},
    "vera": {"lr": _VERA.lr, "d_init": _VERA.d_init},
}  # fmt: skip
# (variant, the knobs that place it), fewest params first.
LADDER: tuple[tuple[str, dict[str, Any]], ...] = (
    ("vera", {"vera_rank": _VERA.vera_rank, "targets": "qv", "layers": "top-1"}),
    ("lora", {"rank": 2, "targets": "qv", "layers": "top-1"}),
    ("lora", {"rank": 2, "targets": "qv", "layers": "all"}),
    ("lora", {"rank": 8, "targets": "qv", "layers": "all"}),
    ("lora", {"rank": 8, "targets": "all", "layers": "all"}),
    ("lora", {"rank": 64, "targets": "all", "layers": "all"}),
)
DESIGN_ATTR = "initial_design"  # a trial's index among the design's enqueued points


def design_points(space: SearchSpace) -> list[dict[str, Any]]:
    """The ladder's points the space can draw, as Optuna params (``variant``, ``lora.rank``, ...),
    with the knobs the space fixes left to it; duplicates once."""
    points: list[dict[str, Any]] = []
    for variant, placed in LADDER:
        knobs = space.knobs.get(variant)
        if knobs is None:
            continue
        wanted = DEFAULTS[variant] | placed
        point = {name: value for name, value in wanted.items() if name in knobs}
        if not all(_drawable(knobs[name], value) for name, value in point.items()):
            continue
        params = {f"{variant}.{n}": v for n, v in point.items() if knobs[n].fixed is None}
        if len(space.variants) > 1:
            params = {"variant": variant} | params
        if params not in points:
            points.append(params)
    return points


def enqueue_design(
    study: optuna.Study,
    space: SearchSpace,
    limit: int,
    fits: Callable[[str, dict[str, Any]], bool] = lambda variant, knobs: True,
) -> list[dict[str, Any]]:
    """Enqueue up to ``limit`` of the ladder's points on a new ``study``; ``fits`` takes a point's
    variant and search knobs (the variant's own names, the space's fixed ones not included) and
    says whether it is within the budget. Returns the points enqueued."""
    chosen = [p for p in design_points(space) if fits(*own_knobs(p, space))][:limit]
    for index, params in enumerate(chosen):
        study.enqueue_trial(params, user_attrs={DESIGN_ATTR: index}, skip_if_exists=False)
    return chosen


def describe(study: optuna.Study, space: SearchSpace) -> str:
    """The design's points still waiting to run, in a line ("" when none)."""
    waiting = [
        t.system_attrs.get("fixed_params", {})
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        if DESIGN_ATTR in t.user_attrs
    ]
    if not waiting:
        return ""
    shown = []
    for variant, knobs in (own_knobs(p, space) for p in waiting):
        placed = next(dict(p) for v, p in LADDER if v == variant)  # the knobs that tell them apart
        shown.append(" ".join([variant, *(str(knobs[k]) for k in placed if k in knobs)]))
    return (
        f"initial design: {len(waiting)} configuration{'s' * (len(waiting) != 1)} first "
        f"(variant, rank, targets, layers: {'; '.join(shown)}; then the sampler's)"
    )


def own_knobs(params: dict[str, Any], space: SearchSpace) -> tuple[str, dict[str, Any]]:
    """A point's variant and its params in the variant's knob names (``lora.rank`` -> ``rank``);
    a one-variant space draws no ``variant``."""
    variant = params.get("variant", space.variants[0])
    prefix = f"{variant}."
    knobs = {name.removeprefix(prefix): v for name, v in params.items() if name.startswith(prefix)}
    return variant, knobs


def _drawable(knob: Knob, value: Any) -> bool:
    """Whether the space can draw ``value`` for this knob (a fixed knob takes its own value)."""
    if knob.fixed is not None:
        return True
    if knob.choices is not None:
        return value in knob.choices
    return knob.low <= value <= knob.high

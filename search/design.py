"""The search's first configurations (its initial design, ``--initial-design``): LoRA at its
defaults on a ladder of placements, from one block's query/value at rank 2 to every projection
at rank 64.

Why: TPE learns from the trials at the full budget R, and its first ones are small VeRAs (the
small end wins the first rungs), so it draws VeRA again and again and the front's large end
is left to chance (bench/tables/sampler_live.md). A ladder along the second objective gives it,
from the start, one known-good recipe across the decades of params: rank 8 on query/value of
every block (the LoRA paper's placement), its rank-2 form, that on the top block alone, this
project's LoRA defaults (rank 8 on every projection) and rank 64 there. LoRA's other knobs are
its defaults (lr 1e-3, alpha 2·rank, kaiming init, no rsLoRA). On MiniLM (SST-2's head
included) the ladder is 3,842 / 19,202 / 74,498 / 338,690 / 2,704,130 trainable params.

Why not by default: live on SST-2 (bench/sampler_live.py, 2 search seeds, 48 configurations,
R = 270; bench/tables/sampler_design.md) the front spanned 2.16 decades on average against
1.68 and took 0.76x the steps, but its hypervolume was 0.93x (lower at both seeds): once the
design's rank-8 LoRA on every projection reaches R (dev 0.882, on both fronts), TPE draws
LoRA-family configurations where it drew the small VeRAs that make most of the hypervolume.
So it is for a search that must cover the large end (a budget table's ≤ 1M row), not the
default.

A new study enqueues the ladder's points before anything is drawn (Optuna's ``enqueue_trial``;
each is one of ``--trials``); a point the space cannot draw (no LoRA in ``--variants``, a rank
or lr outside a space file's range) is left out, a knob the space fixes takes its fixed value
(points that become the same are enqueued once), and under ``--max-params`` a point over the
budget is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from lorasearch.adapters.knobs import Knob
from lorasearch.adapters.lora import LoraConfig
from lorasearch.spaces import SearchSpace

VARIANT = "lora"
_LORA = LoraConfig()
# LoRA's defaults (adapters/lora.py): the knobs every ladder point shares.
DEFAULTS: dict[str, Any] = {
    "lr": _LORA.lr, "alpha_ratio": _LORA.alpha / _LORA.rank, "rslora": _LORA.rslora,
    "init": _LORA.init,
}  # fmt: skip
# (rank, targets, layers), fewest params first.
LADDER: tuple[tuple[int, str, str], ...] = (
    (2, "qv", "top-1"),
    (2, "qv", "all"),
    (8, "qv", "all"),
    (8, "all", "all"),
    (64, "all", "all"),
)
DESIGN_ATTR = "initial_design"  # a trial's index in the ladder


def design_points(space: SearchSpace) -> list[dict[str, Any]]:
    """The ladder's points the space can draw, as Optuna params (``variant``, ``lora.rank``, ...),
    with the knobs the space fixes left to it; duplicates once."""
    knobs = space.knobs.get(VARIANT)
    if knobs is None:
        return []
    points: list[dict[str, Any]] = []
    for rank, targets, layers in LADDER:
        wanted = DEFAULTS | {"rank": rank, "targets": targets, "layers": layers}
        point = {name: value for name, value in wanted.items() if name in knobs}
        if not all(_drawable(knobs[name], value) for name, value in point.items()):
            continue
        params = {f"{VARIANT}.{n}": v for n, v in point.items() if knobs[n].fixed is None}
        if len(space.variants) > 1:
            params = {"variant": VARIANT} | params
        if params not in points:
            points.append(params)
    return points


def enqueue_design(
    study: optuna.Study,
    space: SearchSpace,
    limit: int,
    fits: Callable[[dict[str, Any]], bool] = lambda knobs: True,
) -> list[dict[str, Any]]:
    """Enqueue up to ``limit`` of the ladder's points on a new ``study``; ``fits`` takes a point's
    search knobs (the variant's own names, the space's fixed ones included) and says whether it
    is within the budget. Returns the points enqueued."""
    chosen = [p for p in design_points(space) if fits(own_knobs(p))][:limit]
    for index, params in enumerate(chosen):
        study.enqueue_trial(params, user_attrs={DESIGN_ATTR: index}, skip_if_exists=False)
    return chosen


def describe(study: optuna.Study) -> str:
    """The design's points still waiting to run, in a line ("" when none)."""
    waiting = [
        t.system_attrs.get("fixed_params", {})
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        if DESIGN_ATTR in t.user_attrs
    ]
    if not waiting:
        return ""
    shown = [
        " ".join(str(knobs[k]) for k in ("rank", "targets", "layers") if k in knobs)
        for knobs in map(own_knobs, waiting)
    ]
    return (
        f"initial design: {len(waiting)} LoRA configuration{'s' * (len(waiting) != 1)} first "
        "(rank, targets, layers: "
        f"{'; '.join(shown)}; then the sampler's)"
    )


def own_knobs(params: dict[str, Any]) -> dict[str, Any]:
    """A point's params in the variant's knob names (``lora.rank`` -> ``rank``)."""
    prefix = f"{VARIANT}."
    return {name.removeprefix(prefix): v for name, v in params.items() if name.startswith(prefix)}


def _drawable(knob: Knob, value: Any) -> bool:
    """Whether the space can draw ``value`` for this knob (a fixed knob takes its own value)."""
    if knob.fixed is not None:
        return True
    if knob.choices is not None:
        return value in knob.choices
    return knob.low <= value <= knob.high

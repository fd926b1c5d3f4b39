"""The samplers ``--sampler`` can name: a registry of name -> factory.

A factory takes the search's config and the seed to use (the config's seed plus the trials the
study already holds, so a resumed study does not replay its draws) and returns an Optuna sampler.
Adding a sampler is one line here, or ``SAMPLERS["name"] = factory`` from outside.

The ``--max-params`` budget reaches every sampler the same way, as Optuna 5's per-trial
constraint (``trial.set_constraint`` in the objective): TPE, NSGA-II and GP read it from the
trials themselves, so no factory needs ``constraints_func`` (deprecated in Optuna 5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna

if TYPE_CHECKING:
    from lorasearch.search.config import SearchConfig

SamplerFactory = Callable[["SearchConfig", int], optuna.samplers.BaseSampler]

# "tpe" learns only from the trials that reached R: an MO study's paused (PRUNED) trials carry
# no values. Letting it learn from every configuration's rung point instead (BOHB's rule,
# bench/rung_view.py) did no better live: SST-2 + MiniLM, 48 configurations, R = 270, front
# hypervolume 1.178 / 1.127 against 1.239 / 1.199 at search seeds 0 / 1
# (bench/sampler_live.py, bench/tables/sampler_live.md).
SAMPLERS: dict[str, SamplerFactory] = {
    "tpe": lambda config, seed: optuna.samplers.TPESampler(
        multivariate=True,
        group=True,
        seed=seed,
        n_startup_trials=min(10, max(2, config.trials // 3)),
    ),  # fmt: skip
    "nsga2": lambda config, seed: optuna.samplers.NSGAIISampler(seed=seed, population_size=8),
    "random": lambda config, seed: optuna.samplers.RandomSampler(seed=seed),
    "gp": lambda config, seed: optuna.samplers.GPSampler(seed=seed),
}


def make_sampler(config: SearchConfig, offset: int) -> optuna.samplers.BaseSampler:
    """``config.sampler``'s sampler, seeded ``config.seed + offset``."""
    return SAMPLERS[config.sampler](config, config.seed + offset)

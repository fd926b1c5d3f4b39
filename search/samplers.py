"""The samplers ``--sampler`` can name: a registry of name -> factory.

A factory takes the search's config and the seed to use (the config's seed plus the trials the
study already holds, so a resumed study does not replay its draws) and returns an Optuna sampler.
Adding a sampler is one line here, or ``SAMPLERS["name"] = factory`` from outside.

The ``--max-params`` budget reaches every sampler the same way, as Optuna 5's per-trial
constraint (``trial.set_constraint`` in the objective): TPE, NSGA-II and GP read it from the
trials themselves, so no factory needs ``constraints_func`` (deprecated in Optuna 5).

"tpe" learns from every configuration's point at one rung, not only from the trials that reached
the full budget (:class:`RungTPESampler`, ``search/rung_view.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna

if TYPE_CHECKING:
    from lorasearch.search.config import SearchConfig

SamplerFactory = Callable[["SearchConfig", int], optuna.samplers.BaseSampler]


class RungTPESampler(optuna.samplers.TPESampler):
    """Optuna's TPE, reading the study through :class:`~lorasearch.search.rung_view.RungView`:
    at the highest rung with at least its startup count of configurations, each one's point."""

    def _view(self, study: optuna.Study):
        from lorasearch.search.rung_view import RungView

        return RungView(study, max(self._n_startup_trials, 1))

    def infer_relative_search_space(self, study, trial):
        return super().infer_relative_search_space(self._view(study), trial)

    def sample_relative(self, study, trial, search_space):
        return super().sample_relative(self._view(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        view = self._view(study)
        return super().sample_independent(view, trial, param_name, param_distribution)


SAMPLERS: dict[str, SamplerFactory] = {
    "tpe": lambda config, seed: RungTPESampler(
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

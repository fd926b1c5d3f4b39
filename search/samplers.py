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
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import FrozenTrial

from lorasearch.errors import LorasearchError

if TYPE_CHECKING:
    from lorasearch.search.config import SearchConfig

SamplerFactory = Callable[["SearchConfig", int], optuna.samplers.BaseSampler]

# "tpe" learns only from the trials that reached R: an MO study's paused (PRUNED) trials carry
# no values. Letting it learn from every configuration's rung point instead (BOHB's rule,
# bench/rung_view.py) did no better live: SST-2 + MiniLM, 48 configurations, R = 270, front
# hypervolume 1.178 / 1.127 against 1.239 / 1.199 at search seeds 0 / 1
# (bench/sampler_live.py, bench/tables/sampler_live.md).
DEFAULT_SAMPLER = "tpe"
SAMPLERS: dict[str, SamplerFactory] = {
    "tpe": lambda config, seed: _tpe(config, seed),
    "nsga2": lambda config, seed: optuna.samplers.NSGAIISampler(seed=seed, population_size=8),
    "random": lambda config, seed: optuna.samplers.RandomSampler(seed=seed),
    "gp": lambda config, seed: optuna.samplers.GPSampler(seed=seed),
    "balanced": lambda config, seed: BalancedVariants(_tpe(config, seed), seed),
}


def check_sampler(name: str) -> None:
    """A name ``SAMPLERS`` lacks is the user's error, in one line."""
    if name not in SAMPLERS:
        raise LorasearchError(f"unknown sampler '{name}'; use {', '.join(SAMPLERS)}")


def make_sampler(config: SearchConfig, offset: int) -> optuna.samplers.BaseSampler:
    """``config.sampler``'s sampler, seeded ``config.seed + offset``."""
    return SAMPLERS[config.sampler](config, config.seed + offset)


def _tpe(config: SearchConfig, seed: int) -> optuna.samplers.TPESampler:
    return optuna.samplers.TPESampler(
        multivariate=True,
        group=True,
        seed=seed,
        n_startup_trials=min(10, max(2, config.trials // 3)),
    )


VARIANT_PARAM = "variant"  # the space's categorical (spaces/space.py)


class BalancedVariants(optuna.samplers.BaseSampler):
    """The variants in turn, each configuration's knobs from ``base``.

    A new configuration gets the variant the study has drawn least often so far (ties broken
    by the seeded generator); ``base`` draws everything else, learning each variant's knobs
    from that variant's trials (TPE's ``group=True``). Promotions and retries re-run a
    configuration already drawn and do not count. Why: TPE learns the variant with its knobs
    and, once the first trials at R are small VeRAs, draws VeRA again and again: 22 of 48
    configurations in both budget studies (bench/tables/budget_sst2_r810s.sqlite3,
    budget_agnews_r810.sqlite3), 51-57% of the draws after startup in
    bench/tables/sampler_live.md, leaving a variant three or four configurations to be judged
    on and the front's large end to chance. Balancing them is no better search, though: live
    on SST-2 (bench/sampler_live.py --samplers balanced,tpe, two seeds, 48 configurations,
    R = 270; bench/tables/sampler_balanced.md) the front's hypervolume was 0.92x TPE's and its
    span 1.35 decades against 1.68, for 0.67x the steps: most draws are then large
    configurations, which pause at the first rung. Hence an option, not the default: for every
    variant judged on as many configurations. Under ``--max-params`` a variant gets its turns
    even where most of its draws exceed the budget (each rejected before training, and
    counted): TPE, which learns the variant too, shifts those turns to the variants that fit.
    """

    def __init__(self, base: optuna.samplers.BaseSampler, seed: int | None = None):
        self._base = base
        self._rng = np.random.RandomState(seed)

    def reseed_rng(self) -> None:
        self._base.reseed_rng()
        self._rng.seed()

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space = self._base.infer_relative_search_space(study, trial)
        return {name: dist for name, dist in space.items() if name != VARIANT_PARAM}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        params = self._base.sample_relative(study, trial, search_space)
        return {name: value for name, value in params.items() if name != VARIANT_PARAM}

    def sample_independent(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if param_name == VARIANT_PARAM and isinstance(param_distribution, CategoricalDistribution):
            counts = drawn_variants(study, trial.number)
            choices = param_distribution.choices
            fewest = min(counts.get(choice, 0) for choice in choices)
            least = [choice for choice in choices if counts.get(choice, 0) == fewest]
            return least[self._rng.randint(len(least))]
        return self._base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._base.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._base.after_trial(study, trial, state, values)


def drawn_variants(study: optuna.Study, exclude: int = -1) -> dict[Any, int]:
    """How many configurations of each variant the study has drawn (every state), leaving out
    trial ``exclude``, promotions (``continues``) and retries of a failed trial."""
    # records imports the config, which imports this module: read it when called
    from lorasearch.search.records import CONTINUES

    retry = optuna.storages.RetryHeartbeatStaleTrialCallback
    counts: dict[Any, int] = {}
    for t in study.get_trials(deepcopy=False):
        variant = t.params.get(VARIANT_PARAM)
        if (
            t.number == exclude
            or variant is None
            or CONTINUES in t.user_attrs
            or retry.retried_trial_number(t) is not None
        ):
            continue
        counts[variant] = counts.get(variant, 0) + 1
    return counts

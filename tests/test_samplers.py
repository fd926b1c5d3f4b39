"""The ``balanced`` sampler: the variants in turn, each configuration's knobs from TPE; promotions
and retries of a configuration already drawn do not count as draws."""

from collections import Counter

import optuna
from conftest import toy_fixed

from lorasearch.search.config import SearchConfig
from lorasearch.search.records import CONTINUES, trial_records
from lorasearch.search.samplers import SAMPLERS, BalancedVariants, drawn_variants
from lorasearch.search.study import run_search
from lorasearch.spaces import SearchSpace
from lorasearch.tracking import NoTracking

SPACE = SearchSpace.default()
VARIANTS = SPACE.variants


def _objective(trial: optuna.Trial) -> tuple[float, float]:
    """The real space's draw, no training: a made-up dev metric that favours one variant."""
    variant, knobs = SPACE.suggest(trial, 300)
    return (0.9 if variant == "vera" else 0.6) + 0.01 * knobs["lr"], 1_000.0


def _study(sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    return optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)


def _balanced(seed: int = 0) -> BalancedVariants:
    return SAMPLERS["balanced"](SearchConfig(trials=48, space=SPACE), seed)


def test_each_variant_is_drawn_in_turn_where_tpe_leans_to_the_winner():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(_balanced())
    for n in range(1, 3 * len(VARIANTS) + 1):
        study.optimize(_objective, n_trials=1)
        counts = Counter(t.params["variant"] for t in study.trials)
        assert max(counts.values()) - min(counts.get(v, 0) for v in VARIANTS) <= 1, n
    assert set(counts.values()) == {3}
    # the same objective under plain TPE: the variant that wins is drawn again and again
    plain = _study(SAMPLERS["tpe"](SearchConfig(trials=48, space=SPACE), 0))
    plain.optimize(_objective, n_trials=3 * len(VARIANTS))
    assert Counter(t.params["variant"] for t in plain.trials)["vera"] > 3


def test_the_draws_are_seeded():
    runs = []
    for _ in range(2):
        study = _study(_balanced(seed=5))
        study.optimize(_objective, n_trials=12)
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1]


def test_promotions_and_retries_are_not_draws():
    study = _study(_balanced())
    study.optimize(_objective, n_trials=3)
    before = Counter(drawn_variants(study))
    assert sum(before.values()) == 3
    first = study.trials[0]
    study.enqueue_trial(first.params, user_attrs={CONTINUES: first.number})
    study.optimize(_objective, n_trials=1)  # a promotion: the same configuration again
    retry = study.ask(fixed_distributions=first.distributions)
    study._storage.set_trial_system_attr(retry._trial_id, "failed_trial", first.number)
    assert drawn_variants(study) == before
    left = before - Counter([first.params["variant"]])
    assert drawn_variants(study, exclude=first.number) == left


class _Relative(optuna.samplers.RandomSampler):
    """A base sampler whose relative draw names a variant and one knob of each variant."""

    def infer_relative_search_space(self, study, trial):
        return {"variant": optuna.distributions.CategoricalDistribution(VARIANTS)} | {
            f"{v}.lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)
            for v in VARIANTS
        }

    def sample_relative(self, study, trial, search_space):
        return {"variant": "vera"} | {f"{v}.lr": 0.00123 for v in VARIANTS}


def test_the_variant_is_the_turns_and_the_knobs_the_base_samplers():
    study = _study(BalancedVariants(_Relative(seed=0), seed=0))
    study.optimize(_objective, n_trials=len(VARIANTS))
    assert sorted(t.params["variant"] for t in study.trials) == sorted(VARIANTS)
    assert all(t.params[f"{t.params['variant']}.lr"] == 0.00123 for t in study.trials)


def test_a_search_with_the_balanced_sampler(toy_data, tiny_bert, tmp_path):
    config = SearchConfig(
        trials=4, space=SearchSpace.default(["lora", "vera"]), sampler="balanced",
        storage=f"sqlite:///{tmp_path / 'b.db'}", study_name="b", early_stop=False,
        initial_design=False,  # (its points would come first)
    )  # fmt: skip
    fixed = toy_fixed(toy_data, tiny_bert, steps=9, eval_every=9)
    study = run_search(fixed, config, tracker=NoTracking())
    drawn = [t for t in trial_records(study) if t.continues is None]
    assert Counter(t.variant for t in drawn) == {"lora": 2, "vera": 2}

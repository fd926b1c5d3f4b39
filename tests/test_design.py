"""The initial design (``--initial-design``): a new study's first trials are LoRA at its defaults
on a ladder of placements, fewest params first; what the space cannot draw or the budget forbids
is left out, and a resumed study, a study that holds trials, or a search without the option gets
none."""

import optuna
import pytest
from conftest import toy_fixed

from lorasearch.adapters import build_adapter
from lorasearch.search.config import SearchConfig
from lorasearch.search.design import (
    DEFAULTS,
    DESIGN_ATTR,
    LADDER,
    describe,
    design_points,
    enqueue_design,
)
from lorasearch.search.records import trial_records
from lorasearch.search.study import run_search
from lorasearch.spaces import SearchSpace
from lorasearch.training.trial import Trial, planned_counts


def _ladder_params(space: SearchSpace) -> list[tuple]:
    return [(p["lora.rank"], p["lora.targets"], p["lora.layers"]) for p in design_points(space)]


def test_the_ladder_is_lora_at_its_defaults_within_the_default_space():
    space = SearchSpace.default()
    points = design_points(space)
    assert _ladder_params(space) == list(LADDER)
    lora = build_adapter("lora").config  # the variant's own defaults
    assert DEFAULTS == {"lr": lora.lr, "alpha_ratio": lora.alpha / lora.rank,
                        "rslora": lora.rslora, "init": lora.init}  # fmt: skip
    for point in points:
        assert point["variant"] == "lora"
        assert {k: point[f"lora.{k}"] for k in DEFAULTS} == DEFAULTS
        knobs = space.adapter_knobs(
            "lora", {k[5:]: v for k, v in point.items() if k != "variant"}, 300
        )
        assert knobs["alpha"] == 2 * knobs["rank"]
    assert "variant" not in design_points(SearchSpace.default(["lora"]))[0]  # one variant: no draw


def test_what_the_space_cannot_draw_is_left_out_and_fixed_knobs_are_its_own():
    assert design_points(SearchSpace.default(["vera", "dora"])) == []
    narrow = SearchSpace.default().override({"lora": {"rank": {"low": 4, "high": 16}}})
    assert _ladder_params(narrow) == [(8, "qv", "all"), (8, "all", "all")]
    low_lr = SearchSpace.default().override({"all": {"lr": {"low": 1e-5, "high": 5e-4}}})
    assert design_points(low_lr) == []
    # targets fixed to qv: the points take it from the space, and those alike are one
    fixed = SearchSpace.default().override({"lora": {"targets": "qv"}})
    points = design_points(fixed)
    assert all("lora.targets" not in p for p in points)
    assert [(p["lora.rank"], p["lora.layers"]) for p in points] == [
        (2, "top-1"), (2, "all"), (8, "all"), (64, "all")
    ]  # fmt: skip


def test_enqueued_first_in_order_up_to_the_limit_and_within_the_budget():
    space = SearchSpace.default()
    study = optuna.create_study(directions=["maximize", "minimize"])
    chosen = enqueue_design(study, space, 3, fits=lambda knobs: knobs["rank"] < 64)
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == chosen == design_points(space)[:3]
    assert [t.user_attrs[DESIGN_ATTR] for t in waiting] == [0, 1, 2]
    assert describe(study).startswith(
        "initial design: 3 LoRA configurations first (rank, targets, layers: 2 qv top-1; "
        "2 qv all; 8 qv all;"
    )
    assert describe(optuna.create_study(directions=["maximize", "minimize"])) == ""
    study = optuna.create_study(directions=["maximize", "minimize"])
    assert len(enqueue_design(study, space, 10, fits=lambda knobs: knobs["rank"] < 64)) == 4


@pytest.fixture(scope="module")
def searched(toy_data, tiny_bert, tmp_path_factory):
    """Three trials of a new study over LoRA and VeRA on tiny BERT, to R = 9 (no rungs)."""
    fixed = toy_fixed(toy_data, tiny_bert, steps=9)
    storage = f"sqlite:///{tmp_path_factory.mktemp('design') / 'study.db'}"
    space = SearchSpace.default(["lora", "vera"])
    config = SearchConfig(trials=3, space=space, storage=storage, study_name="d",
                          fidelity=False, early_stop=False, initial_design=True)  # fmt: skip
    return fixed, storage, space, run_search(fixed, config)


def test_a_new_study_starts_with_the_ladder_fewest_params_first(searched):
    fixed, _, space, study = searched
    trials = trial_records(study)
    assert [t.knobs["rank"] for t in trials] == [r for r, _, _ in LADDER[:3]]
    assert [t.knobs["targets"] for t in trials] == [t for _, t, _ in LADDER[:3]]
    params = [t.trainable_params for t in trials]
    assert params == sorted(params) and len(set(params)) == 3
    assert all(t.state == "COMPLETE" for t in trials)
    assert len(study.trials) == 3  # --trials 3: nothing of the ladder left waiting
    # the rest of the ladder grows too: every point's planned count is above the last
    counts = []
    for point in design_points(space):
        knobs = space.adapter_knobs("lora", {k[5:]: v for k, v in point.items() if "." in k}, 9)
        spec = Trial(fixed.data, fixed.model, build_adapter("lora", **knobs), fixed.train)
        counts.append(planned_counts(spec).trainable)
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert counts[:3] == params


def test_a_resumed_study_and_no_initial_design_draw_from_the_sampler(searched):
    fixed, storage, space, study = searched
    config = SearchConfig(trials=1, space=space, storage=storage, study_name="d",
                          fidelity=False, early_stop=False, initial_design=True)  # fmt: skip
    resumed = run_search(fixed, config)
    assert len(resumed.trials) == 4 and DESIGN_ATTR not in resumed.trials[-1].user_attrs
    off = SearchConfig(trials=1, space=space, storage=storage, study_name="off",
                       fidelity=False, early_stop=False)  # fmt: skip
    assert DESIGN_ATTR not in run_search(fixed, off).trials[0].user_attrs  # the default: none


def test_a_budget_leaves_out_the_points_above_it(toy_data, tiny_bert):
    from lorasearch.search.study import _enqueue_design

    fixed = toy_fixed(toy_data, tiny_bert, steps=4)
    space = SearchSpace.default(["lora"])
    sizes = []
    for point in design_points(space):
        knobs = space.adapter_knobs("lora", {k[5:]: v for k, v in point.items()}, 4)
        spec = Trial(fixed.data, fixed.model, build_adapter("lora", **knobs), fixed.train)
        sizes.append(planned_counts(spec).trainable)
    for budget, expected in ((sizes[2], 3), (sizes[2] - 1, 2), (sizes[-1], 5), (None, 5)):
        study = optuna.create_study(directions=["maximize", "minimize"])
        _enqueue_design(study, fixed, SearchConfig(trials=10, space=space, max_params=budget))
        assert len(study.trials) == expected, budget


def test_a_design_that_cannot_apply_is_said(toy_data, tiny_bert, tmp_path):
    from lorasearch.search.progress import SearchProgress

    class Warnings(SearchProgress):
        said: list[str] = []

        def warning(self, message: str) -> None:
            self.said.append(message)

    fixed = toy_fixed(toy_data, tiny_bert, steps=4)
    storage = f"sqlite:///{tmp_path / 's.db'}"

    def search(variants, name, design):
        config = SearchConfig(trials=1, space=SearchSpace.default(variants), storage=storage,
                              study_name=name, fidelity=False, early_stop=False,
                              initial_design=design)  # fmt: skip
        Warnings.said = []
        return run_search(fixed, config, Warnings()), Warnings.said

    study, said = search(["vera"], "v", True)
    assert said == ["--initial-design: none of its LoRA configurations fits this space "
                    "(--variants, a space file's ranges) or --max-params"]  # fmt: skip
    assert DESIGN_ATTR not in study.trials[0].user_attrs
    search(["lora"], "plain", False)
    _, said = search(["lora"], "plain", True)  # resumed: a study is not started again
    assert said == ["--initial-design starts a new study; 'plain' goes on without it"]
    search(["lora"], "ladder", True)
    _, said = search(["lora"], "ladder", True)  # resumed with its own design: nothing to say
    assert said == []

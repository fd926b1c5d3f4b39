"""The initial design (on by default): a new study's first trials are VeRA and LoRA at their
defaults on a ladder of placements, fewest params first; what the space cannot draw or the budget
forbids is left out, and a resumed study, a study that holds trials, or a search with
``--no-initial-design`` gets none."""

import optuna
import pytest
from conftest import tiny_config, toy_fixed

from lorasearch.adapters import build_adapter
from lorasearch.search import records
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
    return [(p["lora.rank"], p["lora.targets"], p["lora.layers"])
            for p in design_points(space) if "lora.rank" in p]  # fmt: skip


LORA_LADDER = [(k["rank"], k["targets"], k["layers"]) for v, k in LADDER if v == "lora"]


def test_the_ladder_is_vera_then_lora_at_their_defaults_within_the_default_space():
    space = SearchSpace.default()
    points = design_points(space)
    assert [p["variant"] for p in points] == ["vera"] + ["lora"] * 5
    assert _ladder_params(space) == LORA_LADDER
    lora, vera = build_adapter("lora").config, build_adapter("vera").config  # their own defaults
    assert DEFAULTS == {
        "lora": {"lr": lora.lr, "alpha_ratio": lora.alpha / lora.rank, "rslora": lora.rslora,
                 "init": lora.init},
        "vera": {"lr": vera.lr, "d_init": vera.d_init},
    }  # fmt: skip
    assert points[0] == {"variant": "vera", "vera.lr": vera.lr, "vera.d_init": vera.d_init,
                         "vera.vera_rank": vera.vera_rank, "vera.targets": "qv",
                         "vera.layers": "top-1"}  # fmt: skip
    for point in points[1:]:
        assert {k: point[f"lora.{k}"] for k in DEFAULTS["lora"]} == DEFAULTS["lora"]
        knobs = space.adapter_knobs(
            "lora", {k[5:]: v for k, v in point.items() if k != "variant"}, 300
        )
        assert knobs["alpha"] == 2 * knobs["rank"]
    assert "variant" not in design_points(SearchSpace.default(["lora"]))[0]  # one variant: no draw


def test_what_the_space_cannot_draw_is_left_out_and_fixed_knobs_are_its_own():
    assert design_points(SearchSpace.default(["dora", "adalora"])) == []
    assert [p["variant"] for p in design_points(SearchSpace.default(["vera", "dora"]))] == ["vera"]
    narrow = SearchSpace.default().override({"lora": {"rank": {"low": 4, "high": 16}}})
    assert _ladder_params(narrow) == [(8, "qv", "all"), (8, "all", "all")]
    low_lr = SearchSpace.default(["lora"]).override({"all": {"lr": {"low": 1e-5, "high": 5e-4}}})
    assert design_points(low_lr) == []
    # targets fixed to qv: the points take it from the space, and those alike are one
    fixed = SearchSpace.default(["lora"]).override({"lora": {"targets": "qv"}})
    points = design_points(fixed)
    assert all("lora.targets" not in p for p in points)
    assert [(p["lora.rank"], p["lora.layers"]) for p in points] == [
        (2, "top-1"), (2, "all"), (8, "all"), (64, "all")
    ]  # fmt: skip


def test_enqueued_first_in_order_up_to_the_limit_and_within_the_budget():
    space = SearchSpace.default()

    def fits(variant, knobs):
        return variant == "lora" and knobs["rank"] < 64

    study = optuna.create_study(directions=["maximize", "minimize"])
    chosen = enqueue_design(study, space, 3, fits=fits)
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == chosen == design_points(space)[1:4]
    assert [t.user_attrs[DESIGN_ATTR] for t in waiting] == [0, 1, 2]
    assert describe(study, space) == (
        "initial design: 3 configurations first (variant, rank, targets, layers: lora 2 qv top-1; "
        "lora 2 qv all; lora 8 qv all; then the sampler's)"
    )
    assert describe(optuna.create_study(directions=["maximize", "minimize"]), space) == ""
    study = optuna.create_study(directions=["maximize", "minimize"])
    assert len(enqueue_design(study, space, 10, fits=fits)) == 4
    study = optuna.create_study(directions=["maximize", "minimize"])
    enqueue_design(study, space, 2)
    assert describe(study, space).startswith(
        "initial design: 2 configurations first (variant, rank, targets, layers: "
        "vera 256 qv top-1; lora 2 qv top-1;"
    )


@pytest.fixture(scope="module")
def searched(toy_data, tiny_bert, tmp_path_factory):
    """Four trials of a new study over LoRA and VeRA on tiny BERT, to R = 9 (no rungs), the
    design on as by default."""
    fixed = toy_fixed(toy_data, tiny_bert, steps=9)
    storage = f"sqlite:///{tmp_path_factory.mktemp('design') / 'study.db'}"
    space = SearchSpace.default(["lora", "vera"])
    config = SearchConfig(trials=4, space=space, storage=storage, study_name="d",
                          fidelity=False, early_stop=False)  # fmt: skip
    return fixed, storage, space, run_search(fixed, config)


def test_a_new_study_starts_with_the_ladder_fewest_params_first(searched):
    fixed, _, space, study = searched
    trials = trial_records(study)
    assert [(t.variant, t.knobs["targets"], t.knobs["layers"]) for t in trials] == [
        (v, k["targets"], k["layers"]) for v, k in LADDER[:4]
    ]
    assert trials[0].knobs["vera_rank"] == LADDER[0][1]["vera_rank"]
    assert [t.knobs["rank"] for t in trials[1:]] == [k["rank"] for _, k in LADDER[1:4]]
    params = [t.trainable_params for t in trials]
    # VeRA trains r + d_out a module: the fewest on MiniLM (hidden 384), not on tiny BERT (32)
    hidden = tiny_config("bert", 8).hidden_size
    head = trials[1].trainable_params - 2 * 2 * (hidden + hidden)  # LoRA r2 on q, v of a block
    assert params[0] == 2 * (LADDER[0][1]["vera_rank"] + hidden) + head
    assert params[1:] == sorted(params[1:]) and len(set(params)) == 4
    assert all(t.state == "COMPLETE" for t in trials)
    assert len(study.trials) == 4  # --trials 4: nothing of the ladder left waiting
    # the rest of the LoRA ladder grows too: every point's planned count is above the last
    counts = []
    for point in design_points(space):
        variant = point["variant"]
        own = {k.split(".", 1)[1]: v for k, v in point.items() if "." in k}
        knobs = space.adapter_knobs(variant, own, 9)
        spec = Trial(fixed.data, fixed.model, build_adapter(variant, **knobs), fixed.train)
        counts.append(planned_counts(spec).trainable)
    assert counts[1:] == sorted(counts[1:]) and len(set(counts)) == len(counts)
    assert counts[:4] == params


def test_a_resumed_study_and_no_initial_design_draw_from_the_sampler(searched):
    fixed, storage, space, study = searched
    config = SearchConfig(trials=1, space=space, storage=storage, study_name="d",
                          fidelity=False, early_stop=False, initial_design=True)  # fmt: skip
    resumed = run_search(fixed, config)
    assert len(resumed.trials) == 5 and DESIGN_ATTR not in resumed.trials[-1].user_attrs
    off = SearchConfig(trials=1, space=space, storage=storage, study_name="off",
                       fidelity=False, early_stop=False, initial_design=False)  # fmt: skip
    study = run_search(fixed, off)
    assert DESIGN_ATTR not in study.trials[0].user_attrs
    assert records.StudyRecord.of(study).settings["initial_design"] is False
    again = SearchConfig(trials=1, space=space, storage=storage, study_name="off",
                         fidelity=False, early_stop=False)  # fmt: skip
    study = run_search(fixed, again)  # resumed by default: its record keeps its own setting
    assert len(study.trials) == 2 and DESIGN_ATTR not in study.trials[1].user_attrs
    assert records.StudyRecord.of(study).settings["initial_design"] is False


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

    study, said = search(["dora"], "v", True)
    assert said == ["--initial-design: none of its configurations fits this space "
                    "(--variants, a space file's ranges) or --max-params"]  # fmt: skip
    assert DESIGN_ATTR not in study.trials[0].user_attrs
    assert search(["dora"], "quiet", None)[1] == []  # by default: on where it applies, quietly
    search(["lora"], "plain", False)
    _, said = search(["lora"], "plain", True)  # resumed: a study is not started again
    assert said == ["--initial-design starts a new study; 'plain' goes on without it"]
    assert search(["lora"], "plain", None)[1] == []
    search(["lora"], "ladder", True)
    _, said = search(["lora"], "ladder", True)  # resumed with its own design: nothing to say
    assert said == []

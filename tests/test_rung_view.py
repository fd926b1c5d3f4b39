"""The alternative TPE that bench/sampler_live.py measures against the default
(bench/rung_view.py): it learns from each configuration's point at the highest rung with
enough of them, not only from the few trials that reached R. The measurement means something
only if the view is what it says."""

import math

import optuna
import pytest
from conftest import load_bench
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from lorasearch.search.records import CONTINUES, DUPLICATE, RUNGS
from lorasearch.search.samplers import SAMPLERS
from lorasearch.spaces import SearchSpace

rung_view = load_bench("rung_view")
RungView, RungTPESampler, view_trials = (
    rung_view.RungView,
    rung_view.RungTPESampler,
    rung_view.view_trials,
)

DIST = {"variant": CategoricalDistribution(["small", "large"]), "x": FloatDistribution(0, 1)}


def trial(number, state, rungs=None, values=None, variant="small", **attrs):
    made = create_trial(
        state=state,
        values=values,
        params={"variant": variant, "x": number / 100},
        distributions=DIST,
        user_attrs={RUNGS: rungs or {}, **attrs},
    )
    made.number = number
    return made


def test_without_a_full_rung_the_study_is_seen_as_it_is():
    trials = [trial(0, TrialState.PRUNED, {"10": [0.7, 1000]}), trial(1, TrialState.PRUNED)]
    assert view_trials(trials, min_points=2) is trials


def test_each_configuration_once_at_the_highest_full_rung():
    trials = [
        trial(0, TrialState.PRUNED, {"10": [0.60, 1000]}, paused_at=10),
        trial(1, TrialState.PRUNED, {"10": [0.70, 20000], "30": [0.75, 20000]}, paused_at=30),
        # 2 paused at rung 30 and 3 continued it to R: 3 carries the points, 2 is left out
        trial(2, TrialState.PRUNED, {"10": [0.80, 300], "30": [0.82, 300]}, paused_at=30),
        trial(
            3,
            TrialState.COMPLETE,
            {"10": [0.80, 300], "30": [0.82, 300]},
            [0.9, 300],
            **{CONTINUES: 2},
        ),
        trial(4, TrialState.PRUNED, {"10": [0.5, 10**6]}, **{CONTINUES: 0, DUPLICATE: 99}),
        trial(5, TrialState.RUNNING, {"10": [0.9, 10**6]}),
        trial(6, TrialState.PRUNED),  # over the budget: never trained, kept as it is
    ]
    shown = {t.number: t for t in view_trials(trials, min_points=2)}
    assert sorted(shown) == [0, 1, 3, 5, 6]
    assert shown[1].state == TrialState.COMPLETE
    assert shown[1].values == pytest.approx([0.75, math.log10(20000)])
    assert shown[3].state == TrialState.COMPLETE
    assert shown[3].values == pytest.approx([0.82, math.log10(300)])  # its rung point, not R's
    assert shown[0].state == TrialState.PRUNED and shown[0].values is None  # stopped below 30
    assert shown[5] is trials[5] and shown[6] is trials[6]
    # the stored trials are untouched
    assert trials[1].state == TrialState.PRUNED and trials[3].values == [0.9, 300]
    # one point fewer at rung 30 and the view falls back to rung 10, where 0 has its point
    lower = {t.number: t for t in view_trials(trials[:1] + trials[2:], min_points=2)}
    assert lower[0].values == pytest.approx([0.60, 3.0])


def test_a_paused_trial_stays_while_its_continuation_runs():
    trials = [
        trial(0, TrialState.PRUNED, {"10": [0.6, 1000]}, paused_at=10),
        trial(1, TrialState.RUNNING, {"10": [0.6, 1000]}, **{CONTINUES: 0}),
        trial(2, TrialState.PRUNED, {"10": [0.7, 1000]}, paused_at=10),
    ]
    shown = {t.number: t.state for t in view_trials(trials, min_points=2)}
    assert shown == {0: TrialState.COMPLETE, 1: TrialState.RUNNING, 2: TrialState.COMPLETE}


def collapsed_study(sampler) -> optuna.Study:
    """The collapse the view prevents: large configurations are the better ones at the rung, but
    only small ones were promoted to R (COMPLETE); 30 configurations in all."""
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for n in range(30):
        large = n % 2 == 1
        params = 10**6 if large else 1000
        signal = (0.85 if large else 0.70) + 0.002 * n
        done = not large and n < 10
        study.add_trial(
            trial(
                n,
                TrialState.COMPLETE if done else TrialState.PRUNED,
                {"10": [signal, params]},
                [signal + 0.05, params] if done else None,
                variant="large" if large else "small",
            )
        )
    return study


def draws(sampler, count=20) -> int:
    study = collapsed_study(sampler)
    return sum(study.ask().suggest_categorical("variant", ["small", "large"]) == "large"
               for _ in range(count))  # fmt: skip


def test_tpe_draws_what_the_rung_favours_not_only_what_reached_r():
    kwargs = {"multivariate": True, "group": True, "n_startup_trials": 10}
    rung = sum(draws(RungTPESampler(seed=s, **kwargs)) for s in range(5))
    plain = sum(draws(optuna.samplers.TPESampler(seed=s, **kwargs)) for s in range(5))
    # Optuna's TPE ranks only the 5 small COMPLETE trials and draws "large" from its prior
    # alone (24 of 100 at these seeds); through the view the best large configuration is in
    # TPE's good group (42 of 100)
    assert rung >= 1.5 * plain, (rung, plain)


def test_the_view_is_the_study_for_everything_else():
    study = collapsed_study(optuna.samplers.RandomSampler(seed=0))
    view = RungView(study, min_points=10)
    assert view.directions == study.directions and view._study_id == study._study_id
    complete = view._get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    assert len(complete) == 30  # every configuration has its rung point
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 5


def test_registered_with_the_default_tpes_arguments():
    from lorasearch.search.config import SearchConfig

    rung_view.register()
    try:
        config = SearchConfig(trials=48, space=SearchSpace.default())
        made, default = SAMPLERS["tpe_rung"](config, 3), SAMPLERS["tpe"](config, 3)
        assert isinstance(made, RungTPESampler)
        assert made._n_startup_trials == default._n_startup_trials == 10
    finally:
        SAMPLERS.pop("tpe_rung", None)


def _sampler_live():
    return load_bench("sampler_live")


def test_sampler_live_merges_seeds_of_one_setting_only(tmp_path):
    import json

    from lorasearch.errors import LorasearchError

    live = _sampler_live()
    args = {"task": "sst2", "steps": 27, "trials": 4, "train_samples": 300, "eval_samples": 64}
    for seed in (0, 1):
        out = {"args": args | {"seeds": str(seed)}, "startup": 2, "made": f"run {seed}"}
        out["runs"] = [{"sampler": "tpe", "seed": seed}]
        (tmp_path / f"s{seed}.json").write_text(json.dumps(out))
    merged = live.merged([tmp_path / "s0.json", tmp_path / "s1.json"])
    assert merged["args"]["seeds"] == "0,1" and [r["seed"] for r in merged["runs"]] == [0, 1]
    assert merged["made"] == "seeds 0: run 0 / seeds 1: run 1"
    other = json.loads((tmp_path / "s1.json").read_text())
    other["args"]["steps"] = 81
    (tmp_path / "s2.json").write_text(json.dumps(other))
    with pytest.raises(LorasearchError, match="other settings"):
        live.merged([tmp_path / "s0.json", tmp_path / "s2.json"])
    with pytest.raises(LorasearchError, match="cannot read"):
        live.merged([tmp_path / "missing.json"])


def test_sampler_live_passes_its_samplers_and_lowest_rung_to_the_search(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from lorasearch.errors import LorasearchError

    live = _sampler_live()
    seen = {}

    def run_search(fixed, config):
        seen.update(sampler=config.sampler, min_steps=config.min_steps, steps=fixed.train.steps,
                    design=config.design)  # fmt: skip
        raise RuntimeError("stop here")

    monkeypatch.setattr(live, "run_search", run_search)
    args = SimpleNamespace(task="sst2", steps=270, trials=4, train_samples=300, eval_samples=64,
                           min_steps=30)  # fmt: skip
    with pytest.raises(RuntimeError, match="stop here"):
        live.study(tmp_path, "balanced", 0, args)
    assert seen == {"sampler": "balanced", "min_steps": 30, "steps": 270, "design": True}
    new = live.side_settings("min_steps=10,initial_design=0")  # one side's own settings
    with pytest.raises(RuntimeError, match="stop here"):
        live.study(tmp_path, "tpe", 0, args, new)
    assert seen == {"sampler": "tpe", "min_steps": 10, "steps": 270, "design": False}
    assert live.label("tpe", new) == "tpe min_steps=10 initial_design=0"
    for bad in ("min_steps", "eta=3", "min_steps=x"):
        with pytest.raises(LorasearchError, match="settings: "):
            live.side_settings(bad)
    run = {"sampler": "balanced", "seed": 0, "drawn": {"lora": 2}, "drawn_decades": 1.0,
           "front": [[3, "lora", 9000, 0.9]], "front_decades": 0.0, "hypervolume": 1.0,
           "at_r": 1, "steps": 100, "wall_s": 5.0}  # fmt: skip
    out = {
        "args": vars(args) | {"seeds": "0", "samplers": "balanced,tpe"}, "startup": 2,
        "runs": [run, run | {"sampler": "tpe", "hypervolume": 2.0}],
    }  # fmt: skip
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        live.show(out)
    assert "R = 270 (rungs from step 30 unless a setup sets min_steps)" in text.getvalue()
    assert "balanced / tpe: hypervolume 0.500x" in text.getvalue()
    # one sampler, two setups: the runs are told apart by their settings
    out["args"] |= {"samplers": "tpe,tpe", "old_settings": "initial_design=0"}
    out["runs"] = [run | {"sampler": "tpe", "setup": "tpe"},
                   run | {"sampler": "tpe", "setup": "tpe initial_design=0", "hypervolume": 4.0}]  # fmt: skip
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        live.show(out)
    assert "tpe / tpe initial_design=0: hypervolume 0.250x" in text.getvalue()

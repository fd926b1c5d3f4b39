"""The promotion rule of search/fidelity.py on hand-made rungs and fronts."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from optuna.pruners._successive_halving import _is_trial_promotable_to_next_rung
from optuna.study import StudyDirection

from lorasearch.errors import LorasearchError
from lorasearch.search.fidelity import (
    DEFAULT_ETA,
    SIGNALS,
    RungPoint,
    dominates,
    pareto_layers,
    promotable,
    promotion_count,
    promotions,
    ranked,
    rung_steps,
    signal_of,
    spread,
)


@pytest.mark.parametrize(
    ("args", "rungs"),
    [
        ((270,), (10, 30, 90, 270)),  # R/27 .. R by default
        ((300,), (11, 33, 100, 300)),
        ((300, 11), (11, 33, 100, 300)),
        ((81, 1, 3), (1, 3, 9, 27, 81)),
        ((100, 10, 2), (12, 25, 50, 100)),
        ((1000, 100, 4), (250, 1000)),
        ((60, 60), (60,)),
        ((5,), (5,)),
        ((27,), (9, 27)),  # no default rung below MIN_RUNG_STEPS
        ((12,), (12,)),
        ((27, 1), (1, 3, 9, 27)),  # ... unless asked for
        ((1,), (1,)),
        ((3240, None, 3), (120, 360, 1080, 3240)),
        ((3240, 120, 3), (120, 360, 1080, 3240)),
    ],
)
def test_rung_steps(args, rungs):
    assert rung_steps(*args) == rungs
    assert rungs[-1] == args[0]


@pytest.mark.parametrize(
    "args",
    [(0,), (-5,), (100, 0), (100, 101), (100, 10, 1), (100, 10, 0), (100.0,), (100, 2.5), (True,)],
)
def test_rung_steps_rejects_bad_values(args):
    with pytest.raises(LorasearchError):
        rung_steps(*args)


def p(number, signal, params):
    return RungPoint(number, signal, params)


def test_pareto_layers_by_hand():
    a, b, c = p(0, 0.9, 1000), p(1, 0.7, 10), p(2, 0.8, 100)  # the front: no one dominates
    d = p(3, 0.85, 2000)  # dominated by a
    e = p(4, 0.6, 50)  # dominated by b
    f = p(5, 0.5, 5000)  # dominated by everyone but nothing in layer 2 ... by d and e
    assert pareto_layers([f, e, d, c, b, a]) == [[a, b, c], [d, e], [f]]
    assert pareto_layers([]) == []
    same = [p(7, 0.8, 10), p(6, 0.8, 10)]  # identical points never dominate each other
    assert pareto_layers(same) == [[same[1], same[0]]]


def test_a_point_that_dominates_all_is_promoted():
    peers = [p(i, 0.5 + i / 100, 1000 + i) for i in range(10)]
    assert promotable(p(99, 0.95, 10), peers, 3)
    assert not promotable(p(99, 0.95, 10), peers[:1], 3)  # n = 2 < eta: it waits for peers


def test_a_dominated_point_with_enough_peers_is_not():
    peers = [p(0, 0.9, 100), p(1, 0.8, 50), p(2, 0.7, 10)]
    assert not promotable(p(9, 0.85, 200), peers, 3)  # dominated by trial 0
    assert not promotable(p(9, 0.85, 200), peers[:2], 3)  # n = 3 = eta: top 1 only


def test_with_fewer_than_eta_points_nobody_goes_on():
    # Optuna's pruner sends the best so far on; here the first trials pause until eta arrive.
    cheap_low, big_high = p(0, 0.6, 10), p(1, 0.9, 10_000)
    assert promotions([cheap_low, big_high], 3) == []
    assert not promotable(cheap_low, [big_high], 3)
    assert not promotable(p(2, 0.5, 20), [], 3)
    # with n = 3 = eta one goes on: the largest area, the cheap end of the front here
    assert promotions([cheap_low, big_high, p(2, 0.5, 20)], 3) == [cheap_low]
    assert promotable(cheap_low, [big_high, p(2, 0.5, 20)], 3)


@pytest.mark.parametrize(
    ("n", "eta", "inner", "top", "final"),
    [
        (0, 3, 0, 0, 0),
        (1, 3, 0, 1, 1),
        (2, 3, 0, 1, 2),
        (3, 3, 1, 1, 3),
        (4, 3, 1, 2, 3),
        (9, 3, 3, 3, 3),
        (10, 3, 3, 4, 4),
        (18, 3, 6, 6, 6),
        (5, 2, 2, 3, 3),
        (7, 4, 1, 2, 4),
    ],
)
def test_promotion_count(n, eta, inner, top, final):
    """n // eta at an inner rung, ceil(n / eta) at the top one, and at the end of a search
    ceil(n / eta) but at least min(n, eta)."""
    assert promotion_count(n, eta) == inner
    assert promotion_count(n, eta, top=True) == top
    assert promotion_count(n, eta, final=True) == final
    assert promotion_count(n, eta, top=True, final=True) == final


def test_the_first_trial_at_the_top_rung_goes_on_at_once():
    first, worse, better = p(0, 0.7, 1000), p(1, 0.6, 2000), p(2, 0.9, 10)
    assert promotable(first, [], 3, top=True)
    assert not promotable(first, [], 3)  # an inner rung waits for eta peers
    assert not promotable(worse, [first], 3, top=True)  # ceil(2 / 3) = 1: the better one
    assert promotable(better, [first, worse], 3, top=True)
    # NaN points (diverged) count for nothing: one valid point still goes on at the top
    assert promotions([p(3, float("nan"), 5), first], 3, top=True) == [first]
    assert promotions([p(3, float("nan"), 5), first, worse], 3) == []


def test_the_end_of_a_search_sends_at_least_eta_on():
    points = [p(0, 0.9, 100), p(1, 0.8, 50), p(2, 0.7, 10), p(3, 0.6, 500), p(4, 0.5, 900)]
    chosen = promotions(points, 3, final=True)
    assert len(chosen) == 3 and set(chosen) == {points[0], points[1], points[2]}  # the front
    assert promotions(points[:2], 3, final=True) == ranked(points[:2])


def test_the_end_of_a_search_also_spreads_over_params_decades():
    """At the end of a search a rung also sends on as many again, taken round-robin over the
    params decades: a large configuration that every small one dominates still reaches R."""
    small = [p(0, 0.9, 1000), p(1, 0.85, 1200), p(2, 0.8, 1500), p(3, 0.7, 2000), p(4, 0.6, 3000)]
    large = [p(5, 0.7, 200_000), p(6, 0.5, 300_000)]
    points = small + large
    assert [q.number for q in ranked(points)][:3] == [0, 1, 2]
    assert spread(points, 3) == [points[0], points[5], points[1]]  # round 1: 0 and 5; then 1
    assert promotions(points, 3) == [points[0], points[1]]  # an inner rung: 7 // 3, the front
    assert promotions(points, 3, final=True) == [points[0], points[1], points[2], points[5]]
    # one decade: the spread is the ranking itself, so nothing more goes on
    assert promotions(small, 3, final=True) == ranked(small)[:3]
    # a diverged (NaN) point is never spread on, even alone in its decade
    assert promotions([p(7, float("nan"), 10**6), *small], 3, final=True) == ranked(small)[:3]


def test_matches_optuna_on_one_objective():
    """With every trial the same size and at least eta of them, the rule is Optuna's
    SuccessiveHalvingPruner's (which also sends on the best of fewer: here they wait)."""
    rng = random.Random(0)
    for _ in range(400):
        eta = rng.choice([2, 3, 4])
        n = rng.randint(0, 12)
        values = [round(rng.random(), 1) for _ in range(n + 1)]  # rounded: ties happen
        peers = [p(i, v, 500) for i, v in enumerate(values[:-1])]
        mine = p(n, values[-1], 500)
        expected = n + 1 >= eta and _is_trial_promotable_to_next_rung(
            values[-1], list(values), eta, StudyDirection.MAXIMIZE
        )
        assert promotable(mine, peers, eta) == expected, (values, eta)


def test_layers_decide_not_the_signal_alone():
    # n = 6, eta = 3: two go on. By signal alone: 0.90 and 0.89. By layer: the front {0.90 at
    # 1M params, 0.70 at 1k}: the cheap trial continues and the 0.89 one (dominated) does not.
    peers = [p(0, 0.90, 1_000_000), p(1, 0.89, 2_000_000), p(2, 0.88, 3_000_000),
             p(3, 0.60, 5_000), p(4, 0.50, 4_000_000)]  # fmt: skip
    cheap = p(5, 0.70, 1_000)
    assert promotable(cheap, peers, 3)
    assert not promotable(p(1, 0.89, 2_000_000), [q for q in peers if q.number != 1] + [cheap], 3)
    by_signal = sorted([*peers, cheap], key=lambda q: -q.signal)[:2]
    assert cheap not in by_signal  # a scalar rank on the signal would have stopped it


def test_a_partly_filled_layer_is_ordered_by_hypervolume_contribution():
    # One layer of four along the front, two dominated points: n = 6, two go on. The area each
    # adds to (signal, log10 params) up to just below the lowest signal and a decade beyond the
    # largest size: the cheap end first (0.2 x 4.48), then the best signal (it adds 0.3 x 1.48
    # beside it; its near neighbours add a hair less), not the neighbours.
    best, near, nearer, cheap = (p(0, 0.90, 1_000_000), p(1, 0.89, 900_000),
                                 p(2, 0.895, 950_000), p(3, 0.60, 1_000))  # fmt: skip
    dominated = [p(4, 0.5, 2_000_000), p(5, 0.4, 3_000_000)]
    everyone = [best, near, nearer, cheap, *dominated]
    assert ranked(everyone)[:2] == [cheap, best]
    assert promotions(everyone, 3) == [cheap, best]
    for point, expected in ((best, True), (cheap, True), (near, False), (nearer, False)):
        others = [q for q in everyone if q is not point]
        assert promotable(point, others, 3) == expected


def test_contribution_prefers_the_small_good_point_to_a_slightly_better_big_one():
    # The hypervolume is mostly the small end: a 0.85 adapter at 20k params adds more than a
    # 0.88 one at 2M (the epsilon-net took the best signal first).
    small, big = p(0, 0.85, 20_000), p(1, 0.88, 2_000_000)
    worse = [p(i, 0.5, 3_000_000) for i in range(2, 6)]
    assert promotions([big, small, *worse], 3) == [small, big]
    assert promotions([big, small, *worse][:3], 3) == [small]


def test_ties_go_the_candidates_way():
    twin = p(0, 0.8, 100)
    assert promotable(p(1, 0.8, 100), [twin], 2)  # n = 2, eta = 2: top one; equal to it
    assert promotable(p(1, 0.8, 100), [twin, p(2, 0.1, 10_000)], 3)
    assert not promotable(p(1, 0.8, 100), [p(0, 0.81, 100)], 2)


def test_the_candidates_own_record_is_not_a_peer():
    me = p(3, 0.5, 100)
    peers = [p(0, 0.9, 10), me]  # a worker reading back what this trial recorded
    assert not promotable(me, peers, 3)  # n = 2: nobody goes on
    assert not promotable(me, [me], 2)  # n = 1, not 2: alone it waits
    assert promotable(me, [me, p(1, 0.1, 10**6)], 2)  # n = 2, eta = 2: the top one


@dataclass
class Point:
    step: int
    dev_metric: float
    train_loss: float
    dev_loss: float | None = None


def test_signal_of():
    assert SIGNALS == ("dev_loss", "dev_metric")
    point = Point(10, 0.8, 0.6, 0.45)
    assert signal_of(point, "dev_metric") == 0.8
    assert signal_of(point, "dev_loss") == -0.45  # higher is better
    with pytest.raises(LorasearchError):
        signal_of(point, "accuracy")
    with pytest.raises(LorasearchError):
        signal_of(Point(10, 0.8, 0.6), "dev_loss")


def test_eta_is_checked():
    assert DEFAULT_ETA == 3
    with pytest.raises(LorasearchError):
        promotable(p(0, 0.5, 1), [], 1)


def test_layers_match_the_definition_on_random_points():
    rng = random.Random(1)
    for _ in range(200):
        points = [p(i, rng.choice([0.5, 0.6, 0.7, 0.8]), rng.choice([10, 100, 1000]))
                  for i in range(rng.randint(1, 12))]  # fmt: skip
        layers = pareto_layers(points)
        assert sorted(q.number for layer in layers for q in layer) == list(range(len(points)))
        for k, layer in enumerate(layers):
            later = [q for rest in layers[k:] for q in rest]
            for q in layer:  # nothing in this layer or later dominates it ...
                assert not any(dominates(r, q) for r in later)
            if k:  # ... and something in the layer before does
                assert all(any(dominates(r, q) for r in layers[k - 1]) for q in layer)


def test_promotion_is_fast_with_many_peers():
    import time

    rng = random.Random(2)
    peers = [p(i, rng.random(), rng.randint(1_000, 5_000_000)) for i in range(2_000)]
    tick = time.perf_counter()
    promotable(p(9_999, 0.5, 100_000), peers, 3)
    assert time.perf_counter() - tick < 5.0


def test_the_schedule_names_the_rungs_and_a_lowest_rung_inside_the_warmup():
    from lorasearch.search.config import SearchConfig
    from lorasearch.spaces import SearchSpace
    from lorasearch.training.trainer import TrainConfig

    space = SearchSpace.default(["lora"])
    text = SearchConfig(trials=1, space=space).schedule(TrainConfig(steps=810))
    assert text.startswith("rungs at steps 30, 90, 270, 810 (eta 3, ranked by dev_loss)")
    assert "warmup runs to step 48, past rung 30," in text and "--min-steps 90" in text
    past = SearchConfig(trials=1, space=space, min_steps=90).schedule(TrainConfig(steps=810))
    assert past == "rungs at steps 90, 270, 810 (eta 3, ranked by dev_loss)"
    short = SearchConfig(trials=1, space=space).schedule(TrainConfig(steps=810, warmup_ratio=0.01))
    assert "warmup" not in short  # 8 steps: over before rung 30
    flat = SearchConfig(trials=1, space=space, fidelity=False).schedule(TrainConfig(steps=60))
    assert flat == "every trial to 60 steps (no rungs)"

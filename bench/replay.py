"""Replay search strategies against a learning-curve table: hypervolume vs training steps spent.

Each strategy runs as the live search would, over the table made by ``bench/table.py``: an
Optuna study (two objectives: dev metric up, trainable params down) asks configurations through
the real ``SearchSpace.suggest`` and sampler (lorasearch's own ``SAMPLERS``), and the table
answers. The table holds a finite set of configurations, so each ask is answered by the
**nearest unused table configuration of the drawn variant** (distance over the variant's knobs,
each scaled to [0, 1] by its Optuna distribution, log-scaled where the knob is; a variant whose
configurations are all used falls back to a random unused one): sampling without replacement
from the table, with the sampler steering which region is drawn. The sampler is then told the
table configuration's values at the parameters it drew (an approximation that shrinks as the
table grows). A failed configuration (diverged in the table) costs nothing and is told FAIL.

Strategies (each over ``--seeds`` seeds, all with the same budget of ``--trials`` x R steps,
R the table's full budget; ``--trials`` defaults to a quarter of the table, so that a
multi-fidelity strategy, which starts more configurations per step, has some left to start; a
strategy that runs out of table configurations stops there and its curve stays flat):

- ``random``: random sampler, every trial to R.
- ``tpe``: lorasearch's TPE (multivariate, grouped), every trial to R: what Optuna gives today.
- ``early_stop``: TPE with today's Pareto-aware early stopping (``early_stop.stop_reason``, margin
  0.01, z = 2, at every evaluation in the table).
- ``asha_loss`` / ``asha_metric``: TPE with MO-ASHA (``fidelity.promotable`` at every rung of
  ``fidelity.rung_steps(R, --min-steps, --eta)``; one worker, so a trial's peers at a rung are the
  trials that reached it before), on -dev cross-entropy or on the dev metric. A trial not
  promoted costs the steps to its rung and ends PRUNED; only trials at R count on the front.
- ``asha_strata`` / ``asha_shared`` / ``asha_shared1`` / ``asha_union`` / ``asha_variant``
  (only when ``--strategies`` names them): candidates tried for issue 14's front span,
  asha_loss with other promotions (:func:`promoter`): per params decade at every rung, each
  decade its own count / the search's count shared round-robin over the decades / so at the
  lowest rung only / both the search's and per decade / per variant by signal alone at the
  lowest rung.

Hypervolume is the search's (``search/pareto.py``): (best dev metric, log10 trainable params)
from the reference (chance, log10 base model params), over trials that trained to R. Prints the
mean and spread of each strategy's hypervolume at fractions of the budget, then the headline
ratios of issue 13: the steps the default (``--default``, asha_loss; then each other asha_*)
needs, on its mean curve, to reach random's and TPE's final mean hypervolume, over their steps;
each with a 90% bootstrap interval over the seeds (:func:`interval`); then the span of each
strategy's front at the budget (non-dominated trials at R above chance): its decades of params,
log10(max / min), and how often it has a point below 1e4, in 1e4-1e5, 1e5-1e6, from 1e6
params; the last row is the front of every table configuration, the best a search can find. Writes a PNG of the curves.

    python bench/replay.py bench/tables/sst2.csv [--seeds 20] [--trials N] [--eta 3]
        [--min-steps S] [--strategies random,tpe,early_stop,asha_loss,asha_metric,...]
        [--png bench/tables/sst2_replay.png]

``--like OTHER.csv`` replays on only the draws another table of the same draws holds (an A/B of
settings on the same configurations). ``--subset N`` replays on N of the table's configurations
drawn at random (seeded): with ``--trials`` a quarter of the table, how many configurations a
multi-fidelity strategy can start bounds its ratios. ``--signals STOP.csv`` replays with the signals below R from a
``table.py --stop`` table of the same draws (trained under other settings, e.g. a shorter
warmup) and the finals from the table.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from table import read_table  # noqa: E402

STRATEGIES = ("random", "tpe", "early_stop", "asha_loss", "asha_metric", "asha_strata",
              "asha_shared", "asha_shared1", "asha_union", "asha_variant")  # fmt: skip
BASE = STRATEGIES[:5]  # what runs by default; the candidates after them only when named
DECADES = (1e4, 1e5, 1e6)  # the front's span counts points below, between and above these
DEFAULT = "asha_loss"


@dataclass
class Config:
    """One table configuration: its draw, cost and learning curve."""

    index: int
    variant: str
    params: int
    drawn: dict
    curve: dict[int, tuple[float, float]] = field(default_factory=dict)  # step -> (metric, CE)
    best: float = math.nan

    @property
    def failed(self) -> bool:
        return not self.curve or math.isnan(self.best)


@dataclass
class Table:
    configs: list[Config]
    steps: int  # R
    chance: float
    full_params: int
    dev_size: int
    space_json: str | None = None  # the space the table was drawn from (bench/table.py)

    def space(self):
        """The space the replay's sampler draws from: the table's own (its draws' knobs)."""
        from lorasearch.spaces import SearchSpace

        variants = sorted({c.variant for c in self.configs})
        if self.space_json is None:
            return SearchSpace.default(variants)
        space = SearchSpace.from_json(self.space_json)
        return SearchSpace({v: space.knobs[v] for v in variants})

    @property
    def configs_by_index(self) -> dict[int, Config]:
        return {c.index: c for c in self.configs}

    def with_signals(self, other: Table) -> Table:
        """This table with its signals below R (each evaluation step's dev metric and CE) taken
        from ``other``: the same draws trained under other settings (``table.py --stop``). A
        draw that diverged there fails here."""
        from lorasearch.errors import LorasearchError

        theirs = other.configs_by_index
        if other.steps != self.steps:
            raise LorasearchError(f"--signals has R = {other.steps}, the table {self.steps}")
        if missing := sorted(c.index for c in self.configs if c.index not in theirs):
            raise LorasearchError(f"--signals lacks configurations {missing}")
        if differ := sorted(c.index for c in self.configs if c.drawn != theirs[c.index].drawn):
            raise LorasearchError(f"--signals drew other configurations at {differ}")
        configs = []
        for c in self.configs:
            signals = {s: v for s, v in theirs[c.index].curve.items() if s < self.steps}
            configs.append(replace(c, curve=c.curve | signals if signals else {}))
        return replace(self, configs=configs)

    def subset(self, n: int, seed: int = 0) -> Table:
        """``n`` of the table's configurations, drawn at random (seeded): the same table at a
        smaller size, to see how far the ratios depend on how many configurations it holds."""
        from lorasearch.errors import LorasearchError

        if not 0 < n <= len(self.configs):
            raise LorasearchError(f"--subset must be in [1, {len(self.configs)}], got {n}")
        kept = set(random.Random(seed).sample([c.index for c in self.configs], n))
        return replace(self, configs=[c for c in self.configs if c.index in kept])

    def like(self, other: Table) -> Table:
        """Only the draws ``other`` holds: a replay of this table on the same configurations as
        another table of the same draws trained under other settings (e.g. a shorter warmup)."""
        from lorasearch.errors import LorasearchError

        mine = {c.index for c in self.configs}
        wanted = {c.index for c in other.configs}
        if missing := sorted(wanted - mine):
            raise LorasearchError(f"--like: this table lacks draws {missing[:5]}")
        # (by the drawn knobs: LoRA-drop's params depend on its training, a warmup included)
        if [c.drawn for c in self.configs if c.index in wanted] != [c.drawn for c in other.configs]:
            raise LorasearchError("--like: the other table drew other configurations")
        return replace(self, configs=[c for c in self.configs if c.index in wanted])

    @classmethod
    def load(cls, path: Path) -> Table:
        rows = read_table(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        configs: dict[int, Config] = {}
        for r in rows:
            c = configs.setdefault(
                r["config"], Config(r["config"], r["variant"], r["trainable_params"], r["params"])
            )
            if r["step"] > 0 and not math.isnan(r["dev_metric"]):
                c.curve[r["step"]] = (r["dev_metric"], r["dev_loss"])
                c.best = r["best_dev"]
        return cls(
            [configs[i] for i in sorted(configs)],
            meta["steps"],
            meta["chance"],
            meta["full_params"],
            meta.get("dev_size") or meta.get("eval_samples") or 0,
            json.dumps(meta["space"]) if "space" in meta else None,
        )


def hypervolume(points: list[tuple[float, int]], chance: float, full_params: int) -> float:
    """``search/pareto.hypervolume`` on (metric, params) pairs."""
    from lorasearch.search.pareto import points_hypervolume

    return points_hypervolume(points, chance, full_params)


def _scaled(value, dist) -> float:
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        return float(dist.to_internal_repr(value))
    low, high = float(dist.low), float(dist.high)
    if getattr(dist, "log", False):
        value, low, high = math.log(value), math.log(low), math.log(high)
    return (float(value) - low) / (high - low) if high > low else 0.0


def nearest(trial, variant: str, unused: dict[int, Config], rng: random.Random) -> Config:
    """The unused table configuration of ``variant`` nearest the trial's draw."""
    from optuna.distributions import CategoricalDistribution

    same = [c for c in unused.values() if c.variant == variant]
    if not same:
        return unused[rng.choice(sorted(unused))]
    names = [k for k in trial.params if k != "variant"]

    def distance(c: Config) -> float:
        total = 0.0
        for name in names:
            dist = trial.distributions[name]
            if name not in c.drawn:
                total += 1.0
            elif isinstance(dist, CategoricalDistribution):
                total += float(c.drawn[name] != trial.params[name])
            else:
                total += (_scaled(trial.params[name], dist) - _scaled(c.drawn[name], dist)) ** 2
        return total

    return min(same, key=lambda c: (distance(c), c.index))


def draw(study, space, R: int, unused: dict[int, Config], rng: random.Random):
    """Ask the sampler and answer with the nearest unused table configuration; a failed one
    (diverged in the table) is told FAIL and comes back as None."""
    from optuna.trial import TrialState

    trial = study.ask()
    variant, _ = space.suggest(trial, R)
    config = unused.pop(nearest(trial, variant, unused, rng).index)
    if config.failed:
        study.tell(trial, state=TrialState.FAIL)
        return trial, None
    return trial, config


def run(table: Table, strategy: str, seed: int, trials: int, eta: int, min_steps, found=None):
    """One replay: [(steps spent, hypervolume)] after each trial, starting at (0, 0).
    ``found``: a list that receives (steps spent, best dev metric, params) of each trial at R."""
    if strategy.startswith("asha"):
        return run_asha(table, strategy, seed, trials, eta, min_steps, found=found)
    import warnings

    import optuna
    from optuna.trial import TrialState

    from lorasearch.search.early_stop import Finished, stop_reason
    from lorasearch.search.samplers import SAMPLERS

    R = table.steps
    space = table.space()
    with warnings.catch_warnings():  # TPE's ``group`` is experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = SAMPLERS["random" if strategy == "random" else "tpe"](
            SimpleNamespace(trials=trials), seed
        )
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    rng = random.Random(seed)
    unused = {c.index: c for c in table.configs}
    finished: list[Finished] = []
    front: list[tuple[float, int]] = []
    budget, spent, history = trials * R, 0, [(0, 0.0)]
    while spent < budget and unused:
        trial, config = draw(study, space, R, unused, rng)
        if config is None:
            continue
        stopped = None
        steps = sorted(config.curve)
        if strategy == "early_stop":
            curve = {s: config.curve[s][0] for s in steps}
            stopped = next(
                (s for s in steps if stop_reason(s, curve[s], config.params, finished, 0.01,
                                                 table.dev_size)),
                None,
            )  # fmt: skip
            if stopped is None:
                finished.append(Finished(trial.number, config.params, curve, config.best))
        if stopped is None:
            spent += max(steps)
            front.append((config.best, config.params))
            if found is not None:
                found.append((spent, config.best, config.params))
            study.tell(trial, [config.best, config.params])
        else:
            spent += stopped
            study.tell(trial, state=TrialState.PRUNED)
        history.append((spent, hypervolume(front, table.chance, table.full_params)))
    return history


def run_asha(
    table: Table,
    strategy: str,
    seed: int,
    trials: int,
    eta: int,
    min_steps,
    reached=None,
    found=None,
):
    """One replay of the search's successive halving with pauses (``search/promotion.py``): a
    configuration records its point at each rung and goes on if among the rung's
    ``fidelity.promotions``, else pauses; each point recorded enqueues the paused trials that
    now rank there, and a queued promotion runs before a new configuration is sampled (as
    Optuna hands out waiting trials first). The top rung below R rounds its count up, and once
    every table configuration has started, ``promotion.finish``'s rounding up at every rung
    applies (``fidelity.promotion_count``). The sampler is told PRUNED at a pause and the full
    result by the trial that reaches R (an enqueued trial with the same parameters).
    ``reached``: a list that receives each configuration that reaches R, in order; ``found``:
    as ``run``'s. ``asha_strata`` and ``asha_variant`` promote by :func:`promoter`."""
    import warnings

    import optuna
    from optuna.trial import TrialState

    from lorasearch.search.fidelity import RungPoint, rung_steps
    from lorasearch.search.samplers import SAMPLERS

    R = table.steps
    space = table.space()
    with warnings.catch_warnings():  # TPE's ``group`` is experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = SAMPLERS["tpe"](SimpleNamespace(trials=trials), seed)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    rng = random.Random(seed)
    unused = {c.index: c for c in table.configs}
    rungs = rung_steps(R, min_steps, eta)
    _check_rungs(table, rungs[:-1])
    points = {r: {} for r in rungs[:-1]}  # rung -> {config index: RungPoint}
    paused: dict[tuple[int, int], dict] = {}  # (rung, config index) -> its Optuna params
    queue: list[tuple[int, Config, dict]] = []  # promotions: (rung it resumes at, config, params)
    front, budget, spent, history = [], trials * R, 0, [(0, 0.0)]
    promotions = promoter(table, strategy)

    def signal(config: Config, rung: int) -> float:
        metric, loss = config.curve[rung]
        return metric if strategy == "asha_metric" else -loss

    def resume(k: int, chosen: set[int]) -> None:
        """Queue the paused configurations among rung ``k``'s ``chosen`` (a promotion)."""
        for index in sorted(chosen):
            if (rungs[k], index) in paused:
                queue.append((k, table.configs_by_index[index], paused.pop((rungs[k], index))))

    def climb(config: Config, params: dict, start: int) -> bool:
        """Train from rung ``start`` on; False when it pauses."""
        nonlocal spent
        for k in range(start + 1, len(rungs)):
            spent += rungs[k] - rungs[k - 1] if k else rungs[0]
            if rungs[k] == R:
                return True
            here = points[rungs[k]]
            here[config.index] = RungPoint(config.index, signal(config, rungs[k]), config.params)
            top = k == len(rungs) - 2
            chosen = {p.number for p in promotions(list(here.values()), eta, k, top=top)}
            resume(k, chosen - {config.index})
            if config.index not in chosen:
                paused[(rungs[k], config.index)] = params
                return False
        return True

    def finish() -> bool:
        """Every configuration started: ``promotion.finish``'s promotions; False: none."""
        for k, rung in enumerate(rungs[:-1]):
            chosen = {p.number for p in promotions(list(points[rung].values()), eta, k, final=True)}
            resume(k, chosen)
        return bool(queue)

    while spent < budget:
        if queue:
            k, config, params = queue.pop(0)
            if climb(config, params, k):
                study.enqueue_trial(params)
                trial = study.ask()
                space.suggest(trial, R)
                study.tell(trial, [config.best, config.params])
                front.append((config.best, config.params))
                if found is not None:
                    found.append((spent, config.best, config.params))
                if reached is not None:
                    reached.append(config)
        elif unused:
            trial, config = draw(study, space, R, unused, rng)
            if config is None:
                continue
            if climb(config, dict(trial.params), -1):
                study.tell(trial, [config.best, config.params])
                front.append((config.best, config.params))
                if found is not None:
                    found.append((spent, config.best, config.params))
                if reached is not None:
                    reached.append(config)
            else:
                study.tell(trial, state=TrialState.PRUNED)
        elif finish():  # queued promotions: the next turns run them
            continue
        else:
            break
        history.append((spent, hypervolume(front, table.chance, table.full_params)))
    return history


def decade(params: int) -> int:
    """The params decade: 0 below 1e4, 1 for 1e4-1e5, 2 for 1e5-1e6, 3 from 1e6."""
    return sum(params >= d for d in DECADES)


def promoter(table: Table, strategy: str):
    """The rung's promotions ``(points, eta, k, top=, final=)``, k the rung's index: the
    search's ``fidelity.promotions`` for ``asha_loss`` / ``asha_metric``; candidates:
    ``asha_strata``, each params decade promotes its own share (its ``fidelity.promotions``), so
    small configurations cannot crowd large ones out; ``asha_shared``, the search's count taken
    round-robin over the decades (each decade's first by its own ``ranked``, ties of round by
    the rung's ``ranked``), ``asha_shared1`` so at the lowest rung only; ``asha_union``, the
    search's and ``asha_strata``'s; ``asha_variant``, at the lowest rung each variant promotes
    its own share by signal alone (its params set equal), then as the search."""
    from collections import defaultdict
    from dataclasses import replace

    from lorasearch.search.fidelity import promotion_count, promotions, ranked

    variant = {c.index: c.variant for c in table.configs}

    def grouped(points, eta, key, **kw):
        groups = defaultdict(list)
        for p in points:
            groups[key(p)].append(p)
        return [q for g in groups.values() for q in promotions(g, eta, **kw)]

    def shared(points, eta, **kw):
        valid = [p for p in points if not math.isnan(p.signal)]
        overall = {p.number: i for i, p in enumerate(ranked(valid))}
        rounds = {}
        for d in {decade(p.params) for p in valid}:
            rounds |= {
                p.number: i
                for i, p in enumerate(ranked([q for q in valid if decade(q.params) == d]))
            }
        order = sorted(valid, key=lambda p: (rounds[p.number], overall[p.number]))
        return order[: promotion_count(len(valid), eta, **kw)]

    def choose(points, eta, k, **kw):
        if strategy == "asha_shared" or (strategy == "asha_shared1" and k == 0):
            return shared(points, eta, **kw)
        if strategy == "asha_strata":
            return grouped(points, eta, lambda p: decade(p.params), **kw)
        if strategy == "asha_union":
            chosen = grouped(points, eta, lambda p: decade(p.params), **kw)
            return chosen + [p for p in promotions(points, eta, **kw) if p not in chosen]
        if strategy == "asha_variant" and k == 0:
            alike = [replace(p, params=1) for p in points]
            return grouped(alike, eta, lambda p: variant[p.number], **kw)
        return promotions(points, eta, **kw)

    return choose


def front_of(found, chance: float, steps: float) -> list[tuple[float, int]]:
    """The non-dominated (metric up, params down) points above chance found by ``steps``."""
    points = sorted(
        {(m, p) for s, m, p in found if s <= steps and m > chance}, key=lambda x: (x[1], -x[0])
    )
    front, best = [], -math.inf
    for metric, params in points:
        if metric > best:
            front.append((metric, params))
            best = metric
    return front


def span(front: list[tuple[float, int]]) -> tuple[float, set[int]]:
    """The front's decades of params, log10(max / min) (0 when empty), and the decades it
    has a point in (``decade``)."""
    if not front:
        return 0.0, set()
    sizes = [p for _, p in front]
    return math.log10(max(sizes) / min(sizes)), {decade(p) for p in sizes}


def _check_rungs(table: Table, rungs) -> None:
    from lorasearch.errors import LorasearchError

    evaluated = set().union(*(c.curve for c in table.configs if not c.failed))
    if missing := [r for r in rungs if r not in evaluated]:
        raise LorasearchError(f"rungs {missing} are not evaluation steps of the table")


def at(history: list[tuple[int, float]], steps: float) -> float:
    """The hypervolume once ``steps`` were spent (a step function of the history)."""
    value = 0.0
    for spent, hv in history:
        if spent > steps:
            break
        value = hv
    return value


def reach(grid, mean, target: float) -> float | None:
    """The first step of ``grid`` where the mean curve reaches ``target`` (None: never)."""
    for g, m in zip(grid, mean, strict=True):
        if m >= target - 1e-12:
            return float(g)
    return None


def replay(table: Table, strategies, seeds: int, trials: int, eta: int, min_steps, points=201):
    """The grid of steps, {strategy: per-seed curves as an array [seeds, grid]}, the budget,
    and {strategy: per-seed fronts at the budget} (``front_of``)."""
    budget = trials * table.steps
    grid = np.linspace(0, budget, points)
    curves, fronts = {}, {}
    for strategy in strategies:
        founds = [[] for _ in range(seeds)]
        runs = [
            run(table, strategy, seed, trials, eta, min_steps, founds[seed])
            for seed in range(seeds)
        ]
        curves[strategy] = np.array([[at(h, g) for g in grid] for h in runs])
        fronts[strategy] = [front_of(f, table.chance, budget) for f in founds]
    return grid, curves, budget, fronts


def spans(fronts) -> dict[str, tuple[float, float, list[float]]]:
    """{strategy: (mean, std of the fronts' decades, fraction of seeds with a front point in
    each params decade)}."""
    out = {}
    for strategy, per_seed in fronts.items():
        measured = [span(f) for f in per_seed]
        widths = np.array([w for w, _ in measured])
        share = [
            float(np.mean([d in held for _, held in measured])) for d in range(len(DECADES) + 1)
        ]
        out[strategy] = (float(widths.mean()), float(widths.std()), share)
    return out


def headline(grid, curves, budget, default: str = DEFAULT) -> dict[str, float | None]:
    """Steps the default's mean curve needs to reach random's / TPE's final mean hypervolume,
    as a fraction of their budget."""
    out = {}
    mean = curves[default].mean(axis=0)
    for peer in ("random", "tpe"):
        if peer in curves:
            steps = reach(grid, mean, curves[peer][:, -1].mean())
            out[peer] = None if steps is None else steps / budget
    return out


def interval(
    grid, curves, budget, default: str, peer: str, draws: int = 1000, level: float = 0.9
) -> tuple[float, float]:
    """A ``level`` bootstrap interval of :func:`headline`'s ratio for ``peer``: both strategies'
    seeds resampled with replacement ``draws`` times (seeded); a resample whose mean curve never
    reaches the target counts as infinite."""
    rng = np.random.default_rng(0)
    mine, theirs = curves[default], curves[peer][:, -1]
    ratios = []
    for _ in range(draws):
        target = theirs[rng.integers(0, len(theirs), len(theirs))].mean()
        steps = reach(grid, mine[rng.integers(0, len(mine), len(mine))].mean(axis=0), target)
        ratios.append(math.inf if steps is None else steps / budget)
    tail = (1 - level) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high)


def plot(grid, curves, png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for strategy, values in curves.items():
        mean, low, high = (values.mean(0), np.percentile(values, 25, 0),
                           np.percentile(values, 75, 0))  # fmt: skip
        ax.plot(grid, mean, label=strategy)
        ax.fill_between(grid, low, high, alpha=0.15)
    ax.set_xlabel("training steps spent")
    ax.set_ylabel("hypervolume (dev metric x log10 params)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)
    plt.close(fig)


def main() -> None:
    import optuna

    from lorasearch.errors import LorasearchError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path, help="a CSV made by bench/table.py")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--trials",
        type=int,
        help="full-budget trials [default: table / 4, so a multi-fidelity strategy has configurations left to start]",
    )
    parser.add_argument("--eta", type=int, default=3)
    parser.add_argument(
        "--min-steps", type=int, help="lowest rung [default: the search's, R // eta]"
    )
    parser.add_argument("--strategies", default=",".join(BASE))
    parser.add_argument("--default", default=DEFAULT, help="the strategy the ratios are for")
    parser.add_argument("--png", type=Path, help="[default: next to the table, _replay.png]")
    parser.add_argument(
        "--signals",
        type=Path,
        help="a table.py --stop table of the same draws: rung signals from it, finals from TABLE",
    )
    parser.add_argument(
        "--subset", type=int, help="replay on this many of the table's configurations (seeded)"
    )
    parser.add_argument(
        "--like",
        type=Path,
        help="replay on only the draws this other table (of the same draws) holds: an A/B of "
        "two tables trained under other settings on the same configurations",
    )
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    table = Table.load(args.table)  # (a missing table: read_table's one-line error)
    if args.signals:
        table = table.with_signals(Table.load(args.signals))
    if args.subset is not None:
        table = table.subset(args.subset)
    if args.like:
        table = table.like(Table.load(args.like))
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        raise LorasearchError(f"unknown strategies {sorted(unknown)} (from {STRATEGIES})")
    trials = args.trials or max(1, len(table.configs) // 4)
    grid, curves, budget, fronts = replay(
        table, strategies, args.seeds, trials, args.eta, args.min_steps
    )
    from lorasearch.search.fidelity import rung_steps

    print(
        f"{args.table}"
        + (f" (signals below R from {args.signals})" if args.signals else "")
        + f": {len(table.configs)} configurations"
        + (" (a random subset)" if args.subset is not None else "")
        + (f" (the draws of {args.like})" if args.like else "")
        + f", R = {table.steps}, rungs "
        f"{list(rung_steps(table.steps, args.min_steps, args.eta))}; budget {trials} x R = "
        f"{budget:,} steps; {args.seeds} seeds\n"
    )
    fractions = (0.1, 0.25, 1 / 3, 0.5, 1.0)
    print("Hypervolume, mean ± std over seeds, at a fraction of the budget")
    print("| strategy | " + " | ".join(f"{f:.0%} steps" for f in fractions) + " |")
    print("|---|" + "---|" * len(fractions))
    for strategy, values in curves.items():
        cells = []
        for f in fractions:
            column = values[:, int(round(f * (len(grid) - 1)))]
            cells.append(f"{column.mean():.4f} ± {column.std():.4f}")
        print(f"| {strategy} | " + " | ".join(cells) + " |")
    others = [s for s in curves if s.startswith("asha") and s != args.default]
    for default in [args.default, *others] if args.default in curves else others:
        for peer, ratio in headline(grid, curves, budget, default).items():
            final = curves[peer][:, -1].mean()
            low, high = interval(grid, curves, budget, default, peer)
            shown = "never within the budget" if ratio is None else f"{ratio:.3f} of its steps"
            if not math.isinf(low):
                high_text = "never" if math.isinf(high) else f"{high:.3f}"
                shown += f" (90% bootstrap interval over seeds {low:.3f}-{high_text})"
            print(f"{default} reaches {peer}'s final mean hypervolume ({final:.4f}): {shown}")
    print(
        "\nThe front at the budget (trials at R): decades of params log10(max / min), mean ± "
        "std over seeds, and the fraction of seeds with a front point in each decade"
    )
    print("| strategy | decades | <1e4 | 1e4-1e5 | 1e5-1e6 | >=1e6 |\n|---|---|---|---|---|---|")
    own = [
        front_of([(0, c.best, c.params) for c in table.configs if not c.failed], table.chance, 0)
    ]
    for strategy, (mean, std, share) in spans({**fronts, "(the table's front)": own}).items():
        print(
            f"| {strategy} | {mean:.2f} ± {std:.2f} | "
            + " | ".join(f"{s:.2f}" for s in share)
            + " |"
        )
    png = args.png or args.table.with_name(args.table.stem + "_replay.png")
    plot(grid, curves, png, f"{args.table.stem}: {args.seeds} seeds, budget {trials} x R")
    print(f"wrote {png}")


if __name__ == "__main__":
    from lorasearch.errors import run_script

    run_script(main)

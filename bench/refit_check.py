"""Refit of the front a search finds, against the table's best configuration (issue 13).

The search is the default multi-fidelity strategy replayed on the learning-curve table
(``bench/replay.py``: the real promotion code and TPE, answered from the table), once per replay
seed. Its pick is what ``lorasearch best`` picks with no budget: the configuration at the full
budget with the best dev metric. The most frequent pick is then refit, trained again to R at the
table's own settings (task, R, evaluations, dev and train samples, batch) with other training
seeds, and its test metric compared with the table's best configuration's (the best dev metric
of all the table's configurations: what a search that tried every one would pick).

    python bench/refit_check.py bench/tables/sst2.csv [--replays 30] [--seeds 1,2,3] \
        [--jobs 2] [--save bench/tables/sst2_refit.md]
    python bench/refit_check.py --show bench/tables/sst2_refit.md   # a committed result

``--reuse FILE`` takes the refits an earlier output of the check (``--save``) holds instead of
training them again: on CPU a refit is deterministic, so a check whose pick moved retrains only
the new configuration.

Six refits take about half an hour on 2 CPU cores, beyond ``make bench``'s budget: a run's
output is committed (``bench/tables/sst2_refit.md``) and ``run_all`` shows it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import io
import json
import math
import os
import re
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from replay import DEFAULT, Table, run_asha  # noqa: E402
from table import commit, read_table, save_output, show_saved, train_one  # noqa: E402


def picks(table: Table, replays: int, trials: int) -> list:
    """Each replay's pick: the full-budget configuration with the best dev metric."""
    chosen = []
    for seed in range(replays):
        reached: list = []
        run_asha(table, DEFAULT, seed, trials, 3, None, reached)
        chosen.append(max(reached, key=lambda c: (c.best, -c.params)))
    return chosen


def fixed_of(meta: dict, data: str | None):
    from lorasearch.search.config import Fixed
    from lorasearch.training.tasks import data_root
    from lorasearch.training.trainer import TrainConfig
    from lorasearch.training.trial import DataConfig, ModelConfig

    return Fixed(
        DataConfig(
            task=meta["task"],
            data=data or str(data_root() / meta["task"]),
            train_samples=meta["train_samples"],
            eval_samples=meta["eval_samples"],
        ),
        ModelConfig(),
        TrainConfig(
            steps=meta["steps"], eval_every=meta["eval_every"], batch_size=meta["batch_size"]
        ),
    )


def knobs_of(config, steps: int) -> dict:
    """The adapter knobs of a table configuration trained for ``steps``: its Optuna params less
    the ``variant.``, made knobs as the search makes them (``from_search``: ``alpha_ratio``
    becomes ``alpha``, Delta-LoRA's ``delta_start`` fraction a step)."""
    from lorasearch.adapters import get_variant

    prefix = f"{config.variant}."
    drawn = {k[len(prefix) :]: v for k, v in config.drawn.items() if k.startswith(prefix)}
    return get_variant(config.variant).from_search(drawn, steps)


def refit_one(fixed, config, seed: int, threads: int):
    """Train ``config`` to R at the table's settings under training seed ``seed``: its result,
    or the one line saying why the library refused it (e.g. a non-finite loss), so one failed
    refit does not end the others."""
    import torch

    from lorasearch._quiet import quiet_libraries
    from lorasearch.errors import LorasearchError, first_line

    quiet_libraries()  # a spawned process starts loud
    torch.set_num_threads(threads)
    spec = replace(fixed, train=replace(fixed.train, seed=seed))
    try:
        return train_one(spec, config.variant, knobs_of(config, fixed.train.steps))[0]
    except LorasearchError as exc:
        return first_line(exc)


def refit(fixed, jobs: list, processes: int):
    """Each (config, seed) refit's result, in ``jobs``' order: ``processes`` side by side, the
    cores split between them (one process: in this one)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    threads = max(1, (os.cpu_count() or 1) // processes)
    if processes <= 1:
        return (refit_one(fixed, c, seed, threads) for c, seed in jobs)
    pool = ProcessPoolExecutor(processes, mp_context=get_context("spawn"))
    futures = [pool.submit(refit_one, fixed, c, seed, threads) for c, seed in jobs]
    pool.shutdown(wait=False)
    return (future.result() for future in futures)


def main() -> None:
    from lorasearch.errors import LorasearchError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", type=Path, nargs="?")
    parser.add_argument("--show", type=Path, help="only print a saved output")
    parser.add_argument("--replays", type=int, default=30, help="replayed searches")
    parser.add_argument("--trials", type=int, help="budget in R [default: table / 4]")
    parser.add_argument("--seeds", default="1,2,3", help="training seeds of the refit")
    parser.add_argument("--data", help="data folder [default: $LORASEARCH_DATA/TASK]")
    parser.add_argument(
        "--jobs", type=int, default=1, help="refits side by side, the cores split between them"
    )
    parser.add_argument("--save", type=Path, help="also write the output, with its provenance")
    parser.add_argument(
        "--reuse",
        type=Path,
        action="append",
        help="an earlier output of this check on the same table (repeatable): its refits are "
        "taken, not trained again (refits on CPU are deterministic)",
    )
    parser.add_argument(
        "--which",
        choices=("both", "pick", "best"),
        default="both",
        help="refit the replays' most frequent pick, the table's best configuration, or both "
        "(the table's own test metric is one seed, and the best of 64 by dev: refit under the "
        "same seeds, the two compare without that winner's curse)",
    )
    args = parser.parse_args()
    if args.show:
        show_saved(args.show, "refit check")
        return
    if args.table is None or not args.table.exists():
        raise LorasearchError(f"table not found: {args.table}")
    if args.jobs < 1:
        raise LorasearchError(f"--jobs must be at least 1, got {args.jobs}")
    began = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    tick, code, text = time.perf_counter(), commit(), io.StringIO()
    with contextlib.redirect_stdout(Tee(sys.stdout, text)):
        check(args)
    if args.save:
        made = (
            f"{(time.perf_counter() - tick) / 60:.0f} min; {began[:10]}, commit {code}; "
            f"{os.cpu_count()} cores, {args.jobs} refit(s) side by side"
        )
        save_output(args.save, made, text.getvalue())


class Tee:
    """A stream writing to several."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, data: str) -> int:
        for stream in self.streams:
            stream.write(data)
        return len(data)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def check(args) -> None:
    """Replay, pick, refit, compare (the module's docstring)."""
    import optuna

    from lorasearch._quiet import quiet_libraries

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    quiet_libraries()
    table = Table.load(args.table)
    earlier = reused(args.reuse or [], args.table)  # (a bad file: one line before the replays)
    meta = json.loads(args.table.with_suffix(".json").read_text())
    tests = {row["config"]: row["test_metric"] for row in read_table(args.table)}
    trials = args.trials or max(1, len(table.configs) // 4)
    chosen = picks(table, args.replays, trials)
    counts = collections.Counter(c.index for c in chosen)
    best = max((c for c in table.configs if not c.failed), key=lambda c: (c.best, -c.params))
    pick = table.configs_by_index[counts.most_common(1)[0][0]]
    print(
        f"{args.table}: {len(table.configs)} configurations, R = {table.steps}, budget "
        f"{trials} x R, {args.replays} replays of {DEFAULT}\n"
    )
    print("| replays' pick | how often | variant | params | table dev | table test |")
    print("|---|---|---|---|---|---|")
    for index, n in counts.most_common():
        c = table.configs_by_index[index]
        print(f"| {index} | {n}/{args.replays} | {c.variant} | {c.params:,} | {c.best:.4f} | "
              f"{tests[index]:.4f} |")  # fmt: skip
    print(
        f"\nthe table's best configuration: {best.index} ({best.variant}, {best.params:,} "
        f"params), dev {best.best:.4f}, test {tests[best.index]:.4f}"
    )
    fixed = fixed_of(meta, args.data)
    seeds = [int(s) for s in args.seeds.split(",")]
    targets = {"pick": [pick], "best": [best], "both": [pick, best]}[args.which]
    jobs = [(c, seed) for c in {c.index: c for c in targets}.values() for seed in seeds]
    done: dict[int, dict[int, object]] = {c.index: {} for c, _ in jobs}  # index -> seed -> result
    for config, seed in jobs:
        if (config.index, seed) in earlier:
            result, source = earlier[config.index, seed]
            done[config.index][seed] = result
            print(f"{refit_line(config.index, seed, result)} (from {source})")
    jobs = [(c, seed) for c, seed in jobs if (c.index, seed) not in earlier]
    for (config, seed), result in zip(jobs, refit(fixed, jobs, args.jobs), strict=True):
        done[config.index][seed] = result
        print(refit_line(config.index, seed, result), flush=True)
    print()
    report(done, pick, best, tests[best.index], seeds)


REFIT_LINE = re.compile(r"^refit of (\d+), seed (\d+): dev ([0-9.]+), test ([0-9.]+)$")


def refit_line(index: int, seed: int, result) -> str:
    """One refit's output line (what ``REFIT_LINE`` reads back for ``--reuse``): its dev and
    test metric, or why the library refused it."""
    scores = (
        f"failed: {result}"
        if isinstance(result, str)
        else f"dev {result.dev_metric:.4f}, test {result.test_metric:.4f}"
    )
    return f"refit of {index}, seed {seed}: {scores}"


def reused(paths: list[Path], table: Path) -> dict[tuple[int, int], tuple[object, Path]]:
    """(config, seed) -> (its refit's dev and test, the file) from earlier outputs of this
    check on the same table (``--reuse``): a refit on CPU is deterministic (seeds 1-3 of two
    runs a session apart agreed to every digit), so it need not train again. A line that was
    itself reused, or failed, is not taken."""
    from lorasearch.errors import LorasearchError

    found = {}
    for path in paths:
        if not path.exists():
            raise LorasearchError(f"--reuse: no such file: {path}")
        lines = path.read_text().splitlines()
        if not any(line.startswith(f"{table}: ") for line in lines):
            raise LorasearchError(f"--reuse: {path} is not a refit check of {table}")
        for line in lines:
            if match := REFIT_LINE.match(line):
                index, seed, dev, test = match.groups()
                result = SimpleNamespace(dev_metric=float(dev), test_metric=float(test))
                found.setdefault((int(index), int(seed)), (result, path))
    return found


def report(done: dict, pick, best, best_test: float, seeds: list[int]) -> None:
    """Each refit configuration's mean over its seeds, then the pick's gap to the table's best
    (its one table seed, and its refits), paired by seed where both refits trained."""
    trained = {
        i: {s: r for s, r in runs.items() if not isinstance(r, str)} for i, runs in done.items()
    }
    for index, runs in trained.items():
        role = " and ".join(
            name for name, c in (("the pick", pick), ("the table's best", best)) if c.index == index
        )
        failed = len(done[index]) - len(runs)
        if not runs:
            print(f"refit of {role} ({index}): every seed failed")
            continue
        scores = [r.test_metric for r in runs.values()]
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        print(f"refit of {role} ({index}), seeds {','.join(map(str, runs))}: test "
              f"{statistics.fmean(scores):.4f} ± {spread:.4f} (median "
              f"{statistics.median(scores):.4f}), dev "
              f"{statistics.fmean(r.dev_metric for r in runs.values()):.4f}"
              + (f" ({failed} more failed)" if failed else ""))  # fmt: skip
    if not trained.get(pick.index):
        return
    mine = [r.test_metric for r in trained[pick.index].values()]
    mean = statistics.fmean(mine)
    gap = 100 * (best_test - mean)
    print(f"the pick's refit vs the table's best configuration's test (its one seed) "
          f"{best_test:.4f}: {gap:+.2f} pt, {_verdict(gap)}")  # fmt: skip
    if trained.get(best.index):
        refits = [r.test_metric for r in trained[best.index].values()]
        gap = 100 * (statistics.fmean(refits) - mean)
        by_median = 100 * (statistics.median(refits) - statistics.median(mine))
        print(f"the pick's refit vs the table's best refit {statistics.fmean(refits):.4f}: "
              f"{gap:+.2f} pt, {_verdict(gap)}; by medians {by_median:+.2f} pt, "
              f"{_verdict(by_median)}")  # fmt: skip
    both = [s for s in seeds if s in trained[pick.index] and s in trained.get(best.index, {})]
    if best.index == pick.index or not both:
        return
    gaps = [100 * (trained[best.index][s].test_metric - trained[pick.index][s].test_metric)
            for s in both]  # fmt: skip
    print(f"paired by seed (the table's best refit minus the pick's, test): "
          f"{', '.join(f'{g:+.2f}' for g in gaps)} pt")  # fmt: skip
    if len(gaps) > 1:
        error = statistics.stdev(gaps) / math.sqrt(len(gaps))
        print(f"paired mean {statistics.fmean(gaps):+.2f} pt, standard error {error:.2f} pt, "
              f"median {statistics.median(gaps):+.2f} pt over {len(gaps)} seeds")  # fmt: skip


def _verdict(gap: float) -> str:
    return "within 0.5 pt" if gap <= 0.5 else "NOT within 0.5 pt"


if __name__ == "__main__":
    from lorasearch.errors import run_script

    run_script(main)

"""The default multi-fidelity search live with two samplers: what each draws, and the front at R.

``--samplers NEW,OLD`` names them (search/samplers.py; default ``tpe_rung,tpe``): ``tpe`` is
Optuna's TPE, which learns only from the trials that reached the full budget R; ``tpe_rung``
learns from every configuration's point at one rung (``bench/rung_view.py``, registered here as
a sampler of its own); ``balanced`` draws the variants in turn and the knobs with TPE. Both run
in one process, one after the other, with the same settings and sampler seed, on SST-2 (or AG
News) + MiniLM, all eight variants, MO-ASHA rungs from R/27.

Printed for each, per search seed: the variants of the configurations TPE drew after its random
startup (the first ``n_startup`` are the same random draws in both), how many decades of
params those span, the front at R (trials at the full budget, Pareto on dev metric and params),
its spread in decades (log10 max / min params) and its hypervolume (the search's own, in dev
metric and log10 params), the trials at R and the training steps. Last, the means over seeds and
the new over the old.

    python bench/sampler_live.py [--samplers tpe_rung,tpe] [--task sst2] [--steps 270]
        [--min-steps N] [--new-settings K=V,..] [--old-settings K=V,..] [--trials 48] [--seeds 0]
        [--train-samples 8000] [--eval-samples 500] [--json] [--save FILE]
    python bench/sampler_live.py --show bench/tables/sampler_live.md   # a committed result

The two may also be one sampler with other search settings: ``--new-settings`` and
``--old-settings`` set ``min_steps`` or ``initial_design`` (0/1) on one side only, e.g. the
search with its initial design (the default) against none: ``--samplers tpe,tpe
--old-settings initial_design=0`` (bench/tables/sampler_design.md was made so, while the design
was on by default, as it is again).

Seeds can run side by side, one process each (``--json > seedK.json``, a torch thread each),
and ``--merge seed0.json seed1.json [--save FILE]`` prints them as one run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rung_view  # noqa: E402
from table import Provenance, print_output, show_saved  # noqa: E402

from lorasearch._quiet import quiet_libraries
from lorasearch.errors import LorasearchError, run_script
from lorasearch.search.config import Fixed, SearchConfig
from lorasearch.search.pareto import hypervolume
from lorasearch.search.records import StudyRecord, trial_records
from lorasearch.search.records import front as front_records
from lorasearch.search.samplers import SAMPLERS
from lorasearch.search.study import run_search
from lorasearch.spaces import SearchSpace
from lorasearch.training.tasks import data_root
from lorasearch.training.trainer import TrainConfig
from lorasearch.training.trial import DataConfig, ModelConfig

SETTINGS = (
    "task", "steps", "trials", "seeds", "train_samples", "eval_samples", "samplers", "min_steps",
    "new_settings", "old_settings",
)  # fmt: skip
DEFAULT_SAMPLERS = f"{rung_view.NAME},tpe"
# What --new-settings / --old-settings may set on one side's SearchConfig, and how to read it.
SIDE_SETTINGS = {"min_steps": int, "initial_design": lambda text: bool(int(text))}


def side_settings(text: str | None) -> dict:
    """``KEY=VALUE,...`` (keys of ``SIDE_SETTINGS``) as a dict; one error line otherwise."""
    settings = {}
    for item in filter(None, (text or "").split(",")):
        key, _, value = item.partition("=")
        if key not in SIDE_SETTINGS or not value:
            raise LorasearchError(
                f"settings: '{item}' is not KEY=VALUE with KEY one of {', '.join(SIDE_SETTINGS)}"
            )
        try:
            settings[key] = SIDE_SETTINGS[key](value)
        except ValueError:
            raise LorasearchError(f"settings: bad value in '{item}'") from None
    return settings


def label(sampler: str, settings: dict) -> str:
    """A search setup's name: its sampler, then the settings it changes."""
    return " ".join([sampler, *(f"{k}={int(v)}" for k, v in settings.items())])


def startup(trials: int) -> int:
    """The TPE factory's random startup count (search/samplers.py)."""
    config = SearchConfig(trials=trials, space=SearchSpace.default())
    return SAMPLERS["tpe"](config, 0)._n_startup_trials


def decades(params: list[int]) -> float:
    return math.log10(max(params) / min(params)) if params else 0.0


def study(folder: Path, sampler: str, seed: int, args, settings: dict | None = None) -> dict:
    data = DataConfig(
        task=args.task,
        data=str(data_root() / args.task),
        train_samples=args.train_samples,
        eval_samples=args.eval_samples,
    )
    fixed = Fixed(data, ModelConfig(), TrainConfig(steps=args.steps))
    search = SearchConfig(
        trials=args.trials,
        space=SearchSpace.default(),
        storage=f"sqlite:///{folder / 'bench.db'}",
        study_name=f"{label(sampler, settings or {})}-{seed}",
        sampler=sampler,
        seed=seed,
        **({"min_steps": args.min_steps} | (settings or {})),
    )
    start = time.perf_counter()
    result = run_search(fixed, search)
    wall = time.perf_counter() - start
    records = trial_records(result)
    drawn = [t for t in records if t.continues is None][startup(args.trials) :]
    front = front_records(result)
    record = StudyRecord.of(result)
    at_r = [t for t in records if t.state == "COMPLETE"]
    report = {
        "sampler": sampler,
        "setup": label(sampler, settings or {}),
        "rungs": list(search.rungs(args.steps)),
        "seed": seed,
        "wall_s": wall,
        "drawn": dict(Counter(t.variant for t in drawn).most_common()),
        "drawn_decades": decades([t.trainable_params for t in drawn if t.trainable_params]),
        "front": [(t.number, t.variant, int(t.values[1]), t.values[0]) for t in front],
        "front_decades": decades([int(t.values[1]) for t in front]),
        "hypervolume": hypervolume(at_r, record.chance, record.full_params),
        "at_r": len(at_r),
        "at_r_variants": dict(Counter(t.variant for t in at_r).most_common()),
        "steps": sum(t.steps_used or 0 for t in records),
    }
    print(f"{report['setup']} seed {seed}: {len(records)} trials in {wall:.0f} s", file=sys.stderr)
    return report


def show(out: dict) -> None:
    args = out["args"]
    lowest = f"step {args['min_steps']}" if args.get("min_steps") else "the search's default"
    print(
        f"{args['task']} + MiniLM: {args['trials']} configurations, R = {args['steps']} (rungs "
        f"from {lowest} unless a setup sets min_steps), train {args['train_samples']} rows, dev "
        f"{args['eval_samples']}; TPE's first {out['startup']} draws random (the initial "
        f"design's points among them); search seeds {args['seeds']}"
    )
    print()
    print(
        "| setup | seed | rungs | drawn after startup (variant: count) | drawn decades | front at "
        "R (variant params dev) | front decades | hypervolume | trials at R | steps | wall s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in out["runs"]:
        drawn = ", ".join(f"{v} {n}" for v, n in r["drawn"].items())
        front = "; ".join(f"{v} {p:,} {m:.3f}" for _, v, p, m in r["front"])
        rungs = ", ".join(map(str, r["rungs"])) if "rungs" in r else ""
        print(
            f"| {_setup(r)} | {r['seed']} | {rungs} | {drawn} | {r['drawn_decades']:.2f} | "
            f"{front} | {r['front_decades']:.2f} | {r['hypervolume']:.4f} | {r['at_r']} | "
            f"{r['steps']:,} | {r['wall_s']:.0f} |"
        )
    print()
    means = {}
    new_name, old_name = setups(args)
    for sampler in (new_name, old_name):
        runs = [r for r in out["runs"] if _setup(r) == sampler]
        means[sampler] = {
            key: sum(r[key] for r in runs) / len(runs)
            for key in ("front_decades", "drawn_decades", "hypervolume", "steps", "at_r")
        }
        shares = Counter()
        for r in runs:
            shares.update(r["drawn"])
        top, count = shares.most_common(1)[0]
        means[sampler]["top_share"] = (top, count / sum(shares.values()))
    for sampler, m in means.items():
        top, share = m["top_share"]
        print(
            f"{sampler}: front {m['front_decades']:.2f} decades, hypervolume "
            f"{m['hypervolume']:.4f}, {m['at_r']:.1f} trials at R, {m['steps']:,.0f} steps; "
            f"the most drawn variant after startup {top} ({share:.0%} of draws)"
        )
    new, old = means[new_name], means[old_name]
    ratio = new["hypervolume"] / old["hypervolume"] if old["hypervolume"] else math.nan
    print(
        f"{new_name} / {old_name}: hypervolume {ratio:.3f}x, steps "
        f"{new['steps'] / old['steps']:.2f}x, front decades {new['front_decades']:.2f} vs "
        f"{old['front_decades']:.2f}"
    )


def _setup(run: dict) -> str:
    return run.get("setup", run["sampler"])  # (outputs from before the setups: the sampler)


def setups(args: dict) -> tuple[str, str]:
    """The NEW and OLD setups' names, from a run's settings."""
    samplers = args.get("samplers", DEFAULT_SAMPLERS).split(",")
    sides = (args.get("new_settings"), args.get("old_settings"))
    new, old = (label(s, side_settings(t)) for s, t in zip(samplers, sides, strict=True))
    return new, old


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samplers", default=DEFAULT_SAMPLERS, help="NEW,OLD: two of search/samplers.py's"
    )
    parser.add_argument("--task", default="sst2", choices=("sst2", "agnews"))
    parser.add_argument("--steps", type=int, default=270, help="full budget R")
    parser.add_argument("--trials", type=int, default=48, help="configurations per search")
    parser.add_argument(
        "--min-steps", type=int, help="the lowest rung [default: the search's, R/27]"
    )
    parser.add_argument(
        "--new-settings", help="KEY=VALUE,... for NEW's search only (min_steps, initial_design)"
    )
    parser.add_argument("--old-settings", help="the same for OLD's")
    parser.add_argument("--seeds", default="0", help="comma-separated search seeds")
    parser.add_argument("--train-samples", type=int, default=8000)
    parser.add_argument("--eval-samples", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", type=Path, help="also write the output, with its provenance")
    parser.add_argument("--show", type=Path, help="only print a saved output")
    parser.add_argument("--merge", type=Path, nargs="+", help="print these --json outputs as one")
    args = parser.parse_args()
    if args.show:
        show_saved(args.show, "live measurement")
        return
    if args.merge:
        out = merged(args.merge)
        report(out, args, f"{len(args.merge)} processes side by side: {out['made']}")
        return
    quiet_libraries()
    rung_view.register()
    pair = args.samplers.split(",")
    sides = [side_settings(args.new_settings), side_settings(args.old_settings)]
    if len(pair) != 2 or not set(pair) <= set(SAMPLERS):
        raise LorasearchError(f"--samplers: two of {', '.join(SAMPLERS)}, as NEW,OLD")
    if label(pair[0], sides[0]) == label(pair[1], sides[1]):
        raise LorasearchError("--samplers and --new/--old-settings: NEW and OLD are the same")
    run = Provenance()
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        runs = [
            study(Path(scratch), sampler, seed, args, side)
            for seed in seeds
            for sampler, side in zip(pair, sides, strict=True)
        ]
    made = run.made()
    settings = {k: getattr(args, k) for k in SETTINGS}
    out = {"args": settings, "startup": startup(args.trials), "runs": runs, "made": made}
    if args.json:
        print(json.dumps(out))
        return
    report(out, args, made)


def merged(paths: list[Path]) -> dict:
    """Several --json outputs of the same settings as one run (their seeds side by side)."""
    outs = [read_output(path) for path in paths]
    first = {k: v for k, v in outs[0]["args"].items() if k != "seeds"}
    if any({k: v for k, v in o["args"].items() if k != "seeds"} != first for o in outs):
        raise LorasearchError("--merge: the outputs were made with other settings")
    seeds = ",".join(o["args"]["seeds"] for o in outs)
    runs = [run for o in outs for run in o["runs"]]
    made = " / ".join(f"seeds {o['args']['seeds']}: {o['made']}" for o in outs)
    return {
        "args": first | {"seeds": seeds},
        "startup": outs[0]["startup"],
        "runs": runs,
        "made": made,
    }


def read_output(path: Path) -> dict:
    """One ``--json`` output, or one error line naming the file."""
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LorasearchError(f"--merge: cannot read {path}: {exc}") from None
    if not isinstance(out, dict) or not {"args", "startup", "runs", "made"} <= out.keys():
        raise LorasearchError(f"--merge: {path} is no output of sampler_live.py --json")
    return out


def report(out: dict, args, made: str) -> None:
    print_output(lambda: show(out), args.save, made)


if __name__ == "__main__":
    run_script(main)

"""The multi-fidelity search live on SST-2 + MiniLM (not replayed): where its wall time goes and
how many configurations it starts per hour, against a search that trains every trial to R.

Two studies in one process, same full budget R, same space (all eight variants), TPE seed 0,
each recording to MLflow in a scratch folder as a user's search would:

1. ``fidelity``: the default search (MO-ASHA rungs from ``--min-steps``; test scored only for the
   front). Run first in the process, so it pays the loading of libraries, data and model (as a
   fresh ``lorasearch search`` does) - the conservative order for its time share.
2. ``full``: ``--no-fidelity`` (every trial to R), run second, so it finds everything loaded -
   the conservative order for the ratio of configurations per hour.

Printed: each study's wall time, the share of it spent in training steps (the trainer's
measured step time, LoRA-drop's preliminary pass included), the share in evaluation, the rest
(loading, model copies, injection, Optuna, MLflow), configurations started per hour, training
steps per configuration; then the two headline numbers of issue 13: the fidelity search's share
of wall time in training steps, and its configurations per hour over the full-budget search's.

    python bench/fidelity_live.py [--steps 300] [--trials 27] [--full-trials 5]
        [--eval-samples N] [--min-steps S] [--json] [--save FILE]
    python bench/fidelity_live.py --show bench/tables/sst2_live.md   # a committed result

The headline run takes about as long as the rest of ``make bench`` together, so it is run by
itself once per change of the search (``--save``: the output under its command, time, date,
commit and the machine's load) and ``run_all`` shows the committed file.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from table import Provenance, print_output, show_saved  # noqa: E402

from lorasearch._quiet import quiet_libraries
from lorasearch.errors import run_script
from lorasearch.search.config import Fixed, SearchConfig
from lorasearch.search.records import front as front_records
from lorasearch.search.records import trial_records
from lorasearch.search.study import run_search
from lorasearch.spaces import SearchSpace
from lorasearch.tracking import make_tracking
from lorasearch.training.tasks import data_root
from lorasearch.training.trainer import TrainConfig
from lorasearch.training.trial import DataConfig, ModelConfig


def fixed(steps: int, eval_samples: int | None) -> Fixed:
    data = DataConfig(
        task="sst2", data=str(data_root() / "sst2"), train_samples=8000, eval_samples=eval_samples
    )
    return Fixed(data, ModelConfig(), TrainConfig(steps=steps))


def study(folder: Path, name: str, trials: int, args, **config) -> dict:
    """Run one study; its wall time split into training steps, evaluation and the rest."""
    search = SearchConfig(
        trials=trials,
        space=SearchSpace.default(),
        storage=f"sqlite:///{folder / 'bench.db'}",
        study_name=name,
        seed=0,
        **config,
    )
    start = time.perf_counter()
    tracker = make_tracking(f"sqlite:///{folder / 'mlflow.db'}")
    result = run_search(fixed(args.steps, args.eval_samples), search, tracker=tracker)
    wall = time.perf_counter() - start
    records = trial_records(result)
    by_number = {t.number: t for t in records}

    def own(t, field: str) -> float:
        """A trial's own seconds: a promotion resumed from a checkpoint starts with its paused
        predecessor's clock (the run's, restored), which is the predecessor's to count."""
        before = by_number.get(t.continues) if t.resumed_from else None
        return (getattr(t, field) or 0.0) - ((getattr(before, field) or 0.0) if before else 0.0)

    training = sum(own(t, "train_time_s") + (t.prepare_time_s or 0.0) for t in records)
    evaluation = sum(own(t, "eval_time_s") for t in records)
    steps = sum(t.steps_used or 0 for t in records)
    configs = [t for t in records if t.continues is None]  # a promotion is no configuration
    states: dict[str, int] = {}
    for t in records:
        states[t.state] = states.get(t.state, 0) + 1
    report = {
        "trials": len(records),
        "configs": len(configs),
        "promotions": len(records) - len(configs),
        "states": states,
        "wall_s": wall,
        "train_s": training,
        "eval_s": evaluation,
        "train_share": training / wall,
        "eval_share": evaluation / wall,
        "rest_share": 1 - (training + evaluation) / wall,
        "configs_per_hour": len(configs) / wall * 3600,
        "steps": steps,
        "steps_per_config": steps / max(len(configs), 1),
        "test_scored": sum(t.test_metric is not None for t in records),
        "front": [
            (t.number, t.variant, int(t.values[1]), t.values[0]) for t in front_records(result)
        ],
    }
    print(
        f"{name}: {len(configs)} configurations, {len(records)} trials in {wall:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=TrainConfig().steps, help="full budget R")
    parser.add_argument("--trials", type=int, default=27, help="trials of the fidelity search")
    parser.add_argument("--full-trials", type=int, default=5, help="trials trained to R")
    parser.add_argument("--eval-samples", type=int, help="dev examples [default: all, 6,735]")
    parser.add_argument("--min-steps", type=int, help="lowest rung [default: the search's]")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", type=Path, help="also write the output, with its provenance")
    parser.add_argument("--show", type=Path, help="only print a saved output")
    args = parser.parse_args()
    if args.show:
        show_saved(args.show, "live measurement")
        return
    quiet_libraries()
    run = Provenance()  # what runs: at the start
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        out = {
            "steps": args.steps,
            "date": run.began,
            "fidelity": study(folder, "fidelity", args.trials, args, min_steps=args.min_steps),
            "full": study(folder, "full", args.full_trials, args, fidelity=False, early_stop=False),
        }
    f, full = out["fidelity"], out["full"]
    out["configs_per_hour_ratio"] = f["configs_per_hour"] / full["configs_per_hour"]
    if args.json:
        print(json.dumps(out))
        return
    print_output(lambda: show(out, args), args.save, run.made())


def show(out: dict, args) -> None:
    """The tables and the two headline numbers of a run."""
    f, full = out["fidelity"], out["full"]
    rungs = SearchConfig(1, SearchSpace.default(), min_steps=args.min_steps).rungs(args.steps)
    print(
        f"SST-2, MiniLM, all eight variants, R = {args.steps} steps (rungs {list(rungs)}), "
        f"dev {args.eval_samples or 'all'}, TPE seed 0, MLflow on\n"
    )
    print("| search | configurations (+ promotions; trial states) | wall s | training steps | evaluation | rest | "
          "configurations / hour | steps / configuration | test scored |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in (("multi-fidelity (default)", f), ("every trial to R", full)):
        states = ", ".join(f"{n} {s.lower()}" for s, n in sorted(r["states"].items()))
        print(
            f"| {name} | {r['configs']} (+ {r['promotions']}; {states}) | {r['wall_s']:.0f} | {r['train_share']:.1%} "
            f"| {r['eval_share']:.1%} | {r['rest_share']:.1%} | {r['configs_per_hour']:.0f} | "
            f"{r['steps_per_config']:.0f} | {r['test_scored']} |"
        )
    sizes = [params for _, _, params, _ in f["front"]]
    if sizes:  # issue 14: how far the default space's front reaches
        print(
            f"\nmulti-fidelity search's front: {len(sizes)} trials from {min(sizes):,} to "
            f"{max(sizes):,} trainable params ({math.log10(max(sizes) / min(sizes)):.1f} decades): "
            + ", ".join(
                f"{v} {n:,} {m:.3f}" for _, v, n, m in sorted(f["front"], key=lambda x: x[2])
            )
        )
    print(
        f"\nmulti-fidelity search: {f['train_share']:.1%} of wall time in training steps; "
        f"{out['configs_per_hour_ratio']:.2f}x the configurations per hour of a search that "
        f"trains every trial to R"
    )


if __name__ == "__main__":
    run_script(main)

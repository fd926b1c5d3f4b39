"""The search's own costs on SST-2 with MiniLM: overhead, early stopping, sampler efficiency.

1. Search overhead: the share of a study's wall time outside the training steps (model and data
   loading, Optuna, MLflow, evaluations), from a study run first in a fresh process.
2. Early stopping: N trials without Pareto-aware early stopping (TPE, seed 0), then the same N
   configurations, in the same order, with it: training steps used and final hypervolume of each.
3. Sampler efficiency: TPE vs random over several seeds, no early stopping (so equal trials are
   equal training steps): hypervolume after each trial, and the trial at which TPE's mean curve
   reaches random's final mean. The study of (1) is TPE's seed-0 run.

Every study records to MLflow in a scratch folder, as a user's would. Ratios print last.

    python bench/search.py [--trials 16] [--steps 40] [--seeds 0,1,2] [--sampler-trials 12]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lorasearch._quiet import quiet_libraries
from lorasearch.errors import run_script
from lorasearch.search.config import Fixed, SearchConfig
from lorasearch.search.records import trial_records
from lorasearch.search.report import study_report
from lorasearch.search.study import run_search
from lorasearch.spaces import SearchSpace
from lorasearch.tracking import make_tracking
from lorasearch.training.tasks import data_root
from lorasearch.training.trainer import TrainConfig
from lorasearch.training.trial import DataConfig, ModelConfig, load_data


def fixed(steps: int, eval_samples: int) -> Fixed:
    return Fixed(
        DataConfig(
            task="sst2",
            data=str(data_root() / "sst2"),
            train_samples=8000,
            eval_samples=eval_samples,
        ),  # fmt: skip
        ModelConfig(),
        TrainConfig(steps=steps, eval_every=max(1, steps // 3)),
    )


def study(
    folder: Path, name: str, trials: int, args, replay: list[dict] | None = None, **config
) -> tuple[dict, float, list[dict]]:
    """Run one study; ``replay``: configurations its trials must take, in order (enqueued).
    Without rungs unless asked: this script measures the search that trains every trial to its
    end (the baseline of bench/fidelity_live.py and bench/replay.py)."""
    config.setdefault("fidelity", False)
    if replay:
        import optuna

        queued = optuna.create_study(
            study_name=name,
            storage=f"sqlite:///{folder / 'bench.db'}",
            directions=["maximize", "minimize"],
        )
        for params in replay:
            queued.enqueue_trial(params)
    search = SearchConfig(
        trials=trials,
        space=SearchSpace.default(),
        storage=f"sqlite:///{folder / 'bench.db'}",
        study_name=name,
        **config,
    )
    start, began = time.perf_counter(), datetime.datetime.now()
    tracker = make_tracking(f"sqlite:///{folder / 'mlflow.db'}")
    result = run_search(fixed(args.steps, args.eval_samples), search, tracker=tracker)
    wall = time.perf_counter() - start
    timed = [t for t in result.trials if t.datetime_start and t.datetime_complete]
    report = study_report(result)
    trials = trial_records(result)
    for key in ("train_time_s", "eval_time_s", "prepare_time_s"):
        report[key] = sum(getattr(t, key) or 0.0 for t in trials)
    report["trial_time_s"] = sum(t.wall_time_s or 0.0 for t in trials)
    # Where the rest goes: before the first trial (imports, data and model loading, storage and
    # MLflow set-up); inside trials but outside the trainer's measured parts (model copy,
    # injection, export, MLflow per trial); between trials (Optuna, hypervolume, plots).
    first = min((t.datetime_start for t in timed), default=began)
    report["before_first_trial_s"] = (first - began).total_seconds()
    report["objective_s"] = sum(
        (t.datetime_complete - t.datetime_start).total_seconds() for t in timed
    )
    report["trials_timed"] = len(timed)
    task = load_data(fixed(args.steps, args.eval_samples).data)
    report["eval_examples"] = sum(
        len(t.curve) * len(task.dev) + len(task.test) for t in trials if t.test_metric is not None
    )
    report["test_size"], report["dev_size"] = len(task.test), len(task.dev)
    print(f"{name}: {len(result.trials)} trials in {wall:.0f} s", file=sys.stderr, flush=True)
    return report, wall, [t.params for t in result.trials]


DEFAULT_STEPS = TrainConfig().steps  # a trial's default length (`lorasearch search`)


def projected(o: dict, full: dict, trials: int) -> float:
    """The overhead share of a study of ``trials`` default-length trials (with the default number
    of dev scores), from this study's measured rates: steps/s, seconds per evaluated example, overhead
    per trial and once per study. Arithmetic on measurements, labelled as such where printed."""
    step_s = o["train_steps_s"] / full["steps_used"]
    example_s = o["eval_s"] / full["eval_examples"]
    evals = DEFAULT_STEPS // TrainConfig(steps=DEFAULT_STEPS).eval_interval
    trial = DEFAULT_STEPS * step_s + (evals * full["dev_size"] + full["test_size"]) * example_s
    fixed_s = o["before_first_trial_s"] + trials * o["per_trial_s"]
    return fixed_s / (fixed_s + trials * trial)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="early-stopping comparison")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seeds", default="0,1,2", help="sampler comparison, comma-separated")
    parser.add_argument("--sampler-trials", type=int, default=12)
    parser.add_argument("--eval-samples", type=int, default=300, help="dev examples")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    quiet_libraries()
    seeds = [int(s) for s in args.seeds.split(",")]
    out: dict = {"trials": args.trials, "steps": args.steps, "seeds": seeds}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        # 1 + 2: the run without early stopping comes first, so it pays the loading too.
        full, full_wall, configs = study(
            folder, "no-es", args.trials, args, seed=0, early_stop=False
        )
        # The study with early stopping trains the very same configurations in the same order
        # (TPE would otherwise wander elsewhere once stopped trials change what it sees), so the
        # difference in hypervolume is the rule's alone: fronts lost to trials stopped too soon.
        early, early_wall, _ = study(
            folder, "es", args.trials, args, replay=configs, seed=0, early_stop=True
        )
        training = full["train_time_s"] + full["prepare_time_s"]  # LoRA-drop's pass trains too
        measured = training + full["eval_time_s"]
        out["overhead"] = {
            "before_first_trial_s": full["before_first_trial_s"],
            "in_trials_s": full["objective_s"] - measured,
            "between_trials_s": full_wall - full["before_first_trial_s"] - full["objective_s"],
            "wall_s": full_wall,
            "train_steps_s": training,
            "eval_s": full["eval_time_s"],
            "outside_training": 1 - training / full_wall,
            "overhead": 1 - (training + full["eval_time_s"]) / full_wall,
            "per_trial_s": (full_wall - full["before_first_trial_s"] - measured)
            / max(full["trials_timed"], 1),
            "trial_s": measured / max(full["trials_timed"], 1),
        }
        out["overhead"]["projected"] = projected(out["overhead"], full, args.trials)
        out["early_stopping"] = {
            "steps_without": full["steps_used"], "steps_with": early["steps_used"],
            "hv_without": full["hypervolume"], "hv_with": early["hypervolume"],
            "wall_without_s": full_wall, "wall_with_s": early_wall,
            "saved": 1 - early["steps_used"] / full["steps_used"],
            "hv_ratio": early["hypervolume"] / full["hypervolume"] if full["hypervolume"] else 0,
        }  # fmt: skip
        # 3: TPE vs random, several seeds; the study without early stopping is TPE seed 0.
        curves: dict[str, list[list[float]]] = {"tpe": [], "random": []}
        for seed in seeds:
            for sampler in curves:
                if sampler == "tpe" and seed == 0 and args.sampler_trials <= args.trials:
                    curves[sampler].append(full["hypervolume_history"][: args.sampler_trials])
                    continue
                report, _, _ = study(
                    folder, f"{sampler}-{seed}", args.sampler_trials, args,
                    seed=seed, sampler=sampler, early_stop=False,
                )  # fmt: skip
                curves[sampler].append(report["hypervolume_history"])
    mean = {
        s: [statistics.mean(c[i] for c in cs) for i in range(args.sampler_trials)]
        for s, cs in curves.items()
    }
    final = {s: [c[-1] for c in cs] for s, cs in curves.items()}
    reach = next((i + 1 for i, v in enumerate(mean["tpe"]) if v >= mean["random"][-1]), None)
    out["samplers"] = {"curves": curves, "mean": mean, "final": final, "tpe_reaches_at": reach}
    if args.json:
        print(json.dumps(out))
        return
    print_tables(out, args)


def print_tables(out: dict, args) -> None:
    o, e, s = out["overhead"], out["early_stopping"], out["samplers"]
    print(
        f"SST-2, MiniLM, all eight variants, {args.steps} steps per trial, "
        f"dev = {args.eval_samples} examples, test = all 872\n"
    )
    print("Search overhead (no early stopping, first study of the process)\n")
    print("| study wall s | training steps s | evaluation s (dev + test) | outside training "
          "steps | overhead: outside training and evaluation (loading, Optuna, MLflow, "
          "injection, export) |")  # fmt: skip
    print("|---|---|---|---|---|")
    print(f"| {o['wall_s']:.0f} | {o['train_steps_s']:.0f} | {o['eval_s']:.0f} | "
          f"{o['outside_training']:.1%} | {o['overhead']:.1%} |\n")  # fmt: skip
    print("Where the overhead goes\n")
    print("| before the first trial (imports, data, model, storage, MLflow set-up) s | inside "
          "trials, outside training and evaluation (copy, injection, export, MLflow) s | "
          "between trials (Optuna, hypervolume, plots) s |")  # fmt: skip
    print("|---|---|---|")
    print(f"| {o['before_first_trial_s']:.1f} | {o['in_trials_s']:.1f} | "
          f"{o['between_trials_s']:.1f} |\n")  # fmt: skip
    print(f"Per trial: {o['per_trial_s']:.2f} s of overhead against {o['trial_s']:.1f} s of "
          f"training and evaluation; once per study: {o['before_first_trial_s']:.1f} s. "
          f"Projected from these measured rates for {args.trials} trials of the default "
          f"{DEFAULT_STEPS} steps (a dev score every {TrainConfig(steps=DEFAULT_STEPS).eval_interval}): "
          f"{o['projected']:.1%} overhead.\n")  # fmt: skip
    print(f"Early stopping ({args.trials} trials, TPE seed 0; the run with it replays the same "
          "configurations)\n")  # fmt: skip
    print("| | training steps | hypervolume | wall s |")
    print("|---|---|---|---|")
    print(
        f"| without | {e['steps_without']:,} | {e['hv_without']:.4f} | {e['wall_without_s']:.0f} |"
    )
    print(f"| with | {e['steps_with']:,} | {e['hv_with']:.4f} | {e['wall_with_s']:.0f} |\n")
    print(f"Sampler efficiency ({args.sampler_trials} trials per study, seeds {out['seeds']})\n")
    print("| trial | " + " | ".join(str(i + 1) for i in range(len(s["mean"]["tpe"]))) + " |")
    print("|---|" + "---|" * len(s["mean"]["tpe"]))
    for sampler, curve in s["mean"].items():
        print(f"| {sampler} mean HV | " + " | ".join(f"{v:.3f}" for v in curve) + " |")
    reach = s["tpe_reaches_at"]
    print(
        f"\nfinal HV: tpe {statistics.mean(s['final']['tpe']):.4f}, random "
        f"{statistics.mean(s['final']['random']):.4f}; TPE reaches random's final mean at "
        + (f"trial {reach} of {len(s['mean']['tpe'])}" if reach else "no trial")
    )
    print(
        f"search overhead {o['overhead']:.1%} (outside training steps: "
        f"{o['outside_training']:.1%}; projected at {DEFAULT_STEPS}-step trials: "
        f"{o['projected']:.1%}); early stopping saved "
        f"{e['saved']:.1%} of steps at {e['hv_ratio']:.3f}x the hypervolume"
    )


if __name__ == "__main__":
    run_script(main)

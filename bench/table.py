"""The learning-curve table: configurations of the default space trained to a full budget R.

The measuring instrument of issue 13 (as HPO research uses LCBench/HPOBench): configurations
drawn from ``SearchSpace.default()`` (every registered variant) by Optuna's ``RandomSampler``
(seeded, so draw i is always the same configuration), each trained to R steps through
``lorasearch.training.trial.run_trial``, with the dev metric *and* the dev cross-entropy
recorded at every evaluation. Evaluations come every R/27 steps by default, so every rung of
``fidelity.rung_steps(R, R // 27, eta=3)`` (R/27, R/9, R/3, R) is a row, plus the steps between.

Output, under ``bench/tables/`` (``--out``):

- ``NAME.csv``: one row per (configuration, evaluation step), columns ``COLUMNS``: the draw's
  index, variant, trainable params, seconds per training step, the step, dev metric, dev
  cross-entropy, the configuration's best dev metric (what the search records), its test metric,
  and the Optuna parameters it was drawn with (JSON, ``variant.knob`` names: what the replay's
  sampler sees). A configuration that failed (diverged) has one row at step 0 with empty scores.
- ``NAME.json``: the command, commit, task, R, evaluation settings, chance level, base model
  params, date and columns.

Incremental: re-running with the same settings trains only the draws not yet in the CSV (append,
flushed per configuration), so the full table can be built over several sessions or on a GPU.
At the end it prints, per evaluation step, the Spearman correlation across configurations of the
step's dev metric and of its -cross-entropy with the full-budget (best) dev metric.

    python bench/table.py --task sst2 --configs 64 --steps 3240 [--eval-samples 1000]
        [--name sst2] [--seed 0] [--device auto]
    python bench/table.py --task sst2 --name sst2_pilot --configs 16 --steps 270 \\
        --eval-samples 500            # the pilot
    python bench/table.py --report bench/tables/sst2_pilot.csv   # correlations only

``--stop S`` trains each draw only to step S of its R-step schedule and scores no test: the
early signals under other settings (``--warmup-ratio``) at a fraction of a table's cost, for
``replay.py --signals``; its correlations are reported ``--against`` the full table:

    python bench/table.py --task sst2 --name sst2_warmup4 --configs 64 --steps 243 \\
        --eval-samples 500 --warmup-ratio 0.0185 --stop 27 --against bench/tables/sst2.csv

The dev cross-entropy comes from ``EvalPoint.dev_loss`` where the trainer records it; with a
trainer that does not, the table computes it itself in the same forward pass as the metric
(``_DevLossProbe`` wraps the trainer's ``evaluate``), so both numbers score the same weights.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import io
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

COLUMNS = [
    "config",
    "variant",
    "trainable_params",
    "sec_per_step",
    "step",
    "dev_metric",
    "dev_loss",
    "best_dev",
    "test_metric",
    "params",
]
TABLES = Path(__file__).resolve().parent / "tables"
SETTINGS = ("task", "steps", "eval_every", "eval_samples", "train_samples", "seed", "batch_size",
            "warmup_ratio", "stop")  # fmt: skip
# What a table made before a setting existed was made with.
EARLIER = {"warmup_ratio": 0.06, "stop": None}


def show_saved(path: Path, what: str) -> None:
    """Print a committed benchmark output (``--show``: a run too long for ``make bench``)."""
    from lorasearch.errors import LorasearchError

    if not path.exists():
        raise LorasearchError(f"no saved {what}: {path}")
    print(path.read_text().strip())


def save_output(path: Path, made: str, text: str) -> None:
    """Write a benchmark's output (``--save``) under the command that reproduces it (this
    script's arguments less ``--save FILE``) and ``made`` (time, date, commit, machine): what
    :func:`show_saved` prints back."""
    script = Path(sys.argv[0]).name
    command = " ".join([f"python bench/{script}", *without(sys.argv[1:], "--save")])
    path.write_text(f"`{command}` ({made})\n\n{text}")


class Provenance:
    """A live measurement's provenance, taken at its start (what runs: the commit then); its
    :meth:`made` is what ``--save`` writes beside the output."""

    def __init__(self):
        self.began = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self.tick, self.load, self.code = time.perf_counter(), os.getloadavg()[0], commit()

    def made(self) -> str:
        """Time so far, date, commit, and the machine's cores and load at the start and now."""
        return (
            f"{time.perf_counter() - self.tick:.0f} s; {self.began[:10]}, commit {self.code}; "
            f"{os.cpu_count()} cores, 1-minute load {self.load:.1f} at the start and "
            f"{os.getloadavg()[0]:.1f} at the end"
        )


def print_output(write, save: Path | None, made: str) -> None:
    """Print what ``write()`` prints and, with ``save`` (``--save FILE``), also write it there
    under its command and ``made`` (:func:`save_output`)."""
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        write()
    print(text.getvalue(), end="")
    if save:
        save_output(save, made, text.getvalue())


def without(argv: list[str], option: str) -> list[str]:
    """The command's arguments less ``option`` and its value (``--save FILE``: what
    reproduces a measurement; ``--shard K/N``: one process makes the same table)."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg.startswith(f"{option}="):
            skip = False
        elif arg == option:
            skip = True
        else:
            kept.append(arg)
    return kept


def commit() -> str:
    """HEAD's short hash, "+dirty" when a tracked file outside bench/tables is edited (the
    results files there are what the runs themselves rewrite, not the code that ran)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/tables"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{'+dirty' if dirty else ''}" or "unknown"


def draws(n: int, steps: int, seed: int, space_json: str | None = None):
    """The first ``n`` configurations of the space (``space_json``, as the table's JSON records
    it; None: today's default space) under a seeded RandomSampler: (index, variant, adapter
    knobs, Optuna params). Always the same for the same arguments, so a table keeps drawing
    from the space it began with when the default space grows (placement knobs, ...)."""
    import optuna

    from lorasearch.spaces import SearchSpace

    space = SearchSpace.from_json(space_json) if space_json else SearchSpace.default()
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    for index in range(n):
        trial = study.ask()
        variant, knobs = space.suggest(trial, steps)
        yield index, variant, knobs, dict(trial.params)


class _DevLossProbe:
    """Wraps ``training.trainer.evaluate`` so each call also records the split's mean
    cross-entropy from the same forward pass (for a trainer without ``EvalPoint.dev_loss``)."""

    def __init__(self):
        self.losses: list[float] = []

    def __enter__(self):
        import torch

        from lorasearch.training import trainer
        from lorasearch.training.data import collate, eval_batches
        from lorasearch.training.metrics import compute_metric

        self.original = trainer.evaluate
        losses = self.losses

        def evaluate(model, split, metric, config, pad_id, device, *, pad_left=False):
            model.eval()
            predictions = torch.empty(len(split), dtype=torch.long)
            total = 0.0
            with torch.inference_mode(), trainer._autocast(device):
                for indices in eval_batches(split.lengths, config.eval_batch_size):
                    batch = trainer._to_device(collate(split, indices, pad_id, pad_left), device)
                    labels = batch.pop("labels")
                    logits = model(**batch).logits.float()
                    total += float(
                        torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
                    )
                    predictions[indices] = logits.argmax(dim=-1).cpu()
            losses.append(total / max(len(split), 1))
            return compute_metric(metric, split.labels, predictions.tolist())

        trainer.evaluate = evaluate
        return self

    def __exit__(self, *exc):
        from lorasearch.training import trainer

        trainer.evaluate = self.original
        return False


def train_one(fixed, variant: str, knobs: dict, stop: int | None = None):
    """Train one configuration (to step ``stop`` of its R-step schedule, unscored on test, where
    given); returns (TrainResult, dev losses per curve point)."""
    from lorasearch.adapters import build_adapter
    from lorasearch.training.trainer import EvalPoint
    from lorasearch.training.trial import Trial, run_trial

    spec = Trial(fixed.data, fixed.model, build_adapter(variant, **knobs), fixed.train)
    options = {}
    if stop is not None:
        options = {"on_eval": lambda p: "stop" if p.step >= stop else None, "score_test": False}
    if "dev_loss" in getattr(EvalPoint, "__dataclass_fields__", {}):
        result = run_trial(spec, **options)
        return result, [p.dev_loss for p in result.curve]
    with _DevLossProbe() as probe:
        result = run_trial(spec, **options)
    return result, probe.losses[: len(result.curve)]  # the last call scored the test split


def parse_shard(text: str) -> tuple[int, int]:
    from lorasearch.errors import LorasearchError

    try:
        shard, shards = (int(part) for part in text.split("/"))
    except ValueError:
        shard, shards = -1, 0
    if not 0 <= shard < shards:
        raise LorasearchError(f"--shard {text!r} is not K/N with 0 <= K < N")
    return shard, shards


def append(handle, rows: list[list]) -> None:
    """Append one configuration's rows in a single locked write, so shards never interleave."""
    import fcntl
    import io

    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        handle.write(buffer.getvalue())
        handle.flush()
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)


def read_table(path: Path) -> list[dict]:
    """The CSV's rows with numbers parsed (empty scores are NaN); a missing one is the user's
    one-line error."""
    import fcntl

    from lorasearch.errors import LorasearchError

    if not path.exists():
        raise LorasearchError(f"table not found: {path}")
    rows = []
    with open(path, newline="") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)  # never half a shard's write
        for row in csv.DictReader(handle):
            parsed = dict(row)
            for key in ("config", "trainable_params", "step"):
                parsed[key] = int(row[key])
            for key in ("sec_per_step", "dev_metric", "dev_loss", "best_dev", "test_metric"):
                parsed[key] = float(row[key]) if row[key] not in ("", "nan") else math.nan
            parsed["params"] = json.loads(row["params"])
            rows.append(parsed)
    return rows


def spearman(x, y) -> float:
    """Spearman's rank correlation (scipy where installed, else ranks in numpy)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    try:
        from scipy.stats import spearmanr

        return float(spearmanr(x, y).statistic)
    except ImportError:

        def ranks(v):
            order = np.argsort(v, kind="stable")
            r = np.empty(len(v))
            r[order] = np.arange(len(v))
            for value in np.unique(v):  # average ranks for ties
                r[v == value] = r[v == value].mean()
            return r

        return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def correlations(rows: list[dict], finals: list[dict] | None = None):
    """Per evaluation step: (step, configurations, rho(dev metric), rho(-dev CE)) against each
    configuration's full-budget (best) dev metric, from ``finals`` (another table of the same
    draws: a ``--stop`` table has none of its own) or the rows' own."""
    final = {r["config"]: r["best_dev"] for r in finals or rows if not math.isnan(r["best_dev"])}
    steps = sorted({r["step"] for r in rows if r["step"] > 0})
    out = []
    for step in steps:
        at = [r for r in rows if r["step"] == step and r["config"] in final]
        metric = spearman([r["dev_metric"] for r in at], [final[r["config"]] for r in at])
        loss = spearman([-r["dev_loss"] for r in at], [final[r["config"]] for r in at])
        out.append((step, len(at), metric, loss))
    return out


def report(path: Path, against: Path | None = None) -> None:
    rows, finals = read_table(path), against and read_table(against)
    configs = {r["config"] for r in rows}
    variants = sorted({r["variant"] for r in rows})
    print(
        f"{path}: {len(configs)} configurations, {len(rows)} rows, variants {', '.join(variants)}"
    )
    print(
        "\nSpearman correlation with the full-budget dev metric"
        + (f" of {against}" if against else "")
        + ", across configurations"
    )
    print("| step | configurations | dev metric | -dev cross-entropy |")
    print("|---|---|---|---|")
    for step, n, metric, loss in correlations(rows, finals):
        print(f"| {step} | {n} | {metric:.3f} | {loss:.3f} |")


def main() -> None:
    from lorasearch._quiet import quiet_libraries
    from lorasearch.errors import LorasearchError
    from lorasearch.search.config import Fixed
    from lorasearch.search.fidelity import rung_steps
    from lorasearch.spaces import SearchSpace
    from lorasearch.training.metrics import chance_level
    from lorasearch.training.tasks import data_root
    from lorasearch.training.trainer import TrainConfig
    from lorasearch.training.trial import DataConfig, ModelConfig, load_inputs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sst2", help="sst2 or agnews (under --data-root)")
    parser.add_argument("--data", help="data folder [default: $LORASEARCH_DATA/TASK]")
    parser.add_argument("--name", help="table name [default: TASK]")
    parser.add_argument("--out", type=Path, default=TABLES)
    parser.add_argument("--configs", type=int, default=64, help="draws the table should hold")
    parser.add_argument("--steps", type=int, default=3240, help="full budget R")
    parser.add_argument("--eval-every", type=int, help="[default: R // 27]")
    parser.add_argument("--eval-samples", type=int, default=1000, help="dev examples")
    parser.add_argument("--train-samples", type=int, default=8000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (training seed 0)")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--warmup-ratio", type=float, default=EARLIER["warmup_ratio"], help="of R (the trainer's)"
    )
    parser.add_argument(
        "--stop",
        type=int,
        help="train each draw only to this step of its R-step schedule (no test score): the "
        "early signals under other settings, for replay.py --signals; reported --against the "
        "full table",
    )
    parser.add_argument("--report", type=Path, help="only print the correlations of this CSV")
    parser.add_argument(
        "--against",
        type=Path,
        help="the full-budget table whose finals the report ranks by (and, building, whose "
        "space and settings but --warmup-ratio/--stop the draws must share)",
    )
    parser.add_argument(
        "--shard",
        default="0/1",
        help="K/N: train only draws i with i %% N == K, so N processes (or machines sharing the "
        "folder) build one table together; each configuration's rows are appended under a lock",
    )
    args = parser.parse_args()
    if args.report:
        report(args.report, args.against)
        return
    shard, shards = parse_shard(args.shard)
    quiet_libraries()
    eval_every = args.eval_every or max(1, args.steps // 27)
    missing = [
        s for s in rung_steps(args.steps, eval_every, 3) if s % eval_every and s != args.steps
    ]
    if missing:
        raise LorasearchError(
            f"rungs {missing} of R = {args.steps} are not evaluation steps (every {eval_every}); "
            "choose R divisible by 27"
        )
    if args.stop is not None and not (0 < args.stop <= args.steps and args.stop % eval_every == 0):
        raise LorasearchError(
            f"--stop must be an evaluation step (a multiple of {eval_every}) up to R, got {args.stop}"
        )
    name = args.name or args.task
    args.out.mkdir(parents=True, exist_ok=True)
    csv_path, meta_path = args.out / f"{name}.csv", args.out / f"{name}.json"
    fixed = Fixed(
        DataConfig(
            task=args.task,
            data=args.data or str(data_root() / args.task),
            train_samples=args.train_samples,
            eval_samples=args.eval_samples,
        ),
        ModelConfig(),
        TrainConfig(
            steps=args.steps,
            eval_every=eval_every,
            batch_size=args.batch_size,
            seed=0,
            device=args.device,
            warmup_ratio=args.warmup_ratio,
        ),
    )
    settings = {
        "task": args.task,
        "steps": args.steps,
        "eval_every": eval_every,
        "eval_samples": args.eval_samples,
        "train_samples": args.train_samples,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "warmup_ratio": args.warmup_ratio,
        "stop": args.stop,
    }
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    made = meta and {k: meta.get(k, EARLIER.get(k)) for k in SETTINGS}
    if meta and made != settings:
        raise LorasearchError(
            f"{meta_path} was made with other settings ({made}); use another --name"
        )
    space = json.loads(SearchSpace.default().to_json())
    if args.against:  # the same draws as the full table, from the space it was drawn from
        if not args.against.exists():
            raise LorasearchError(f"table not found: {args.against}")
        full = json.loads(args.against.with_suffix(".json").read_text())
        if differ := [k for k in SETTINGS if k not in EARLIER and full.get(k) != settings[k]]:
            raise LorasearchError(f"{args.against} was made with other {', '.join(differ)}")
        space = full["space"]
    done = {r["config"] for r in read_table(csv_path)} if csv_path.exists() else set()
    task, loaded = load_inputs(fixed.data, fixed.model)
    if meta is None:
        meta = settings | {
            "command": "python " + " ".join(sys.argv),
            "commits": [],
            "dates": [],
            "metric_name": task.spec.metric,
            "chance": chance_level(task.spec.metric, task.dev.labels, task.num_labels),
            "full_params": sum(p.numel() for p in loaded.model.parameters()),
            "dev_size": len(task.dev),
            "rungs": list(rung_steps(args.steps, eval_every, 3)),
            "columns": COLUMNS,
            "space": space,
        }
    if "space" not in meta:
        raise LorasearchError(f"{meta_path} records no space: add the one it was drawn from")
    meta["commits"] = sorted(set(meta["commits"]) | {commit()})
    meta["dates"].append(datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))
    meta["configs"] = len(done)
    if args.configs >= meta.get("requested", 0):  # the command that makes the whole table
        meta["requested"] = args.configs
        meta["command"] = "python " + " ".join(without(sys.argv, "--shard"))
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")

    new_file = not csv_path.exists()
    with open(csv_path, "a", newline="") as handle:
        if new_file:
            append(handle, [COLUMNS])
        space = json.dumps(meta["space"])
        for index, variant, knobs, params in draws(args.configs, args.steps, args.seed, space):
            if index in done or index % shards != shard:
                continue
            tick = time.perf_counter()
            drawn = json.dumps(params, sort_keys=True, separators=(",", ":"))
            try:
                result, losses = train_one(fixed, variant, knobs, args.stop)
            except LorasearchError as exc:  # diverged: a failed configuration
                print(f"config {index} {variant}: failed ({exc})", file=sys.stderr)
                append(handle, [[index, variant, 0, "", 0, "", "", "", "", drawn]])
                continue
            per_step = result.train_time_s / max(result.steps, 1)
            append(handle, [
                [index, variant, result.trainable_params, f"{per_step:.5f}", point.step,
                 f"{point.dev_metric:.6f}", f"{loss:.6f}",
                 "" if args.stop else f"{result.dev_metric:.6f}",
                 "" if result.test_metric is None else f"{result.test_metric:.6f}", drawn]
                for point, loss in zip(result.curve, losses, strict=True)
            ])  # fmt: skip
            done = {r["config"] for r in read_table(csv_path)}  # other shards' too
            meta["configs"] = len(done)
            meta_path.write_text(json.dumps(meta, indent=1) + "\n")
            dev = (
                f"dev {result.curve[-1].dev_metric:.4f} at {args.stop}"
                if args.stop
                else (f"best dev {result.dev_metric:.4f}")
            )
            print(
                f"config {index} {variant} params {result.trainable_params:,} {dev} "
                f"({time.perf_counter() - tick:.0f} s, "
                f"{len(done)}/{args.configs})",
                file=sys.stderr,
                flush=True,
            )
    report(csv_path, args.against)


if __name__ == "__main__":
    from lorasearch.errors import run_script

    run_script(main)

"""Run the benchmark suite and write BENCHMARKS.md: a table per benchmark, its command, the machine.

    python bench/run_all.py [--quick] [--output BENCHMARKS.md] [--only replay.py,...]

Each benchmark is its own script under bench/ (run alone to dig in); each measures its baseline
in the same run and prints its ratio last. ``--quick`` shrinks every budget so the whole suite
runs in minutes (it keeps the scripts working; its numbers are not the headline ones). The
1-vs-2-worker benchmark (full mode only) runs when $LORASEARCH_TEST_POSTGRES names a server
(`make services`).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

from lorasearch.errors import run_script

HERE = Path(__file__).parent


def warmup_sections(seeds: str, png_folder: str) -> dict[str, list[str]]:
    """The SST-2 table's replay at half its size, and its rung signals under a warmup that ends
    before rung 1 (``table.py --stop`` rows, committed) with their replay."""
    replay = ["replay.py", "bench/tables/sst2.csv", "--seeds", seeds, "--strategies",
              "random,tpe,asha_loss"]  # fmt: skip
    signals = "bench/tables/sst2_warmup4.csv"
    return {
        "The same on half the table (32 configurations drawn at random)": [
            *replay, "--subset", "32", "--png", f"{png_folder}/sst2_replay_half.png",
        ],
        "Rung signals with the warmup ended before rung 1 (the table's draws to step 27)": [
            "table.py", "--report", signals, "--against", "bench/tables/sst2.csv",
        ],
        "The replay with those rung signals": [
            *replay, "--signals", signals, "--png", f"{png_folder}/sst2_replay_warmup4.png",
        ],
    }  # fmt: skip


def short_warmup_sections(seeds: str, png_folder: str) -> dict[str, list[str]]:
    """The SST-2 table's first 32 draws trained to R under a warmup that ends before rung 1
    (committed): its rung correlations, its replay, and the replay of the same draws from the
    table (6% warmup) as the baseline."""
    table, short = "bench/tables/sst2.csv", "bench/tables/sst2_warmup4_r243.csv"
    replay = ["--seeds", seeds, "--strategies", "random,tpe,asha_loss"]
    return {
        "A warmup that ends before rung 1, trained to R (the table's first 32 draws)": [
            "table.py", "--report", short,
        ],
        "Its replay": [
            "replay.py", short, *replay, "--png", f"{png_folder}/sst2_warmup4_r243_replay.png",
        ],
        "The same 32 draws under the table's 6% warmup (the baseline)": [
            "replay.py", table, "--like", short, *replay,
            "--png", f"{png_folder}/sst2_first32_replay.png",
        ],
    }  # fmt: skip


# The committed budget results (issue 14), reported alike in full and quick runs.
BUDGET_RESULTS = [
    "bench/tables/budget_sst2.json", "bench/tables/budget_agnews.json",
    "bench/tables/budget_sst2_r810.json", "bench/tables/budget_agnews_r810.json",
    "bench/tables/budget_sst2_r810s.json", "bench/tables/budget_agnews_d810.json",
    "bench/tables/budget_agnews_d810_long.json", "bench/tables/budget_agnews_d810_6ep.json",
    "bench/tables/budget_sst2_d810.json", "bench/tables/budget_sst2_default.json",
    "bench/tables/budget_sst2_default_long.json", "bench/tables/budget_sst2_default_6ep.json",
    "bench/tables/budget_sst2_default_s1.json", "bench/tables/budget_sst2_default_s2.json",
]  # fmt: skip


FULL = {
    "Trial throughput vs PEFT + transformers.Trainer": ["throughput.py", "--steps", "100"],
    "Learning-curve table: which early signal predicts the final front": [
        "table.py", "--report", "bench/tables/sst2.csv",
    ],
    "Search strategies replayed on the table: hypervolume vs training steps": [
        "replay.py", "bench/tables/sst2.csv", "--seeds", "30", "--png", "bench/tables/sst2_replay.png",
    ],
    "The same with rungs from R/9": [
        "replay.py", "bench/tables/sst2.csv", "--seeds", "30", "--min-steps", "27",
        "--strategies", "random,tpe,asha_loss", "--png", "bench/tables/sst2_replay_r9.png",
    ],
    **warmup_sections("30", "bench/tables"),
    "The AG News table (same R and rungs)": [
        "table.py", "--report", "bench/tables/agnews.csv",
    ],
    "Search strategies replayed on the AG News table (not the one the default was tuned on)": [
        "replay.py", "bench/tables/agnews.csv", "--seeds", "30", "--png",
        "bench/tables/agnews_replay.png",
    ],
    "Multi-fidelity search live vs every trial to R (committed result)": [
        # its 18 + 3 trials took 9 min on 2 idle cores and 46 on loaded ones: run by itself with
        # --save bench/tables/sst2_live.md (see bench/fidelity_live.py), shown here
        "fidelity_live.py", "--show", "bench/tables/sst2_live.md",
    ],
    "Refit of the replayed search's pick vs the table's best (committed result)": [
        "refit_check.py", "--show", "bench/tables/sst2_refit.md",
    ],
    "The same on AG News (committed result)": [
        "refit_check.py", "--show", "bench/tables/agnews_refit.md",
    ],
    "Variants at their defaults, and full fine-tuning": [
        "variants.py", "--steps", "80", "--seeds", "0,1,2", "--eval-samples", "500",
    ],
    "LoRA-FA activation memory": ["lora_fa_memory.py"],
    "Parameter budgets vs full fine-tuning (issue 14; committed results only)": [
        "budget.py", "--report", *BUDGET_RESULTS,
    ],
    "Many workers: 1 vs 2 on one PostgreSQL study": ["workers.py", "--trials", "6", "--steps", "20"],
    "Batch prediction vs PEFT + transformers pipeline": ["predict_throughput.py", "--threads", "1"],
    **short_warmup_sections("30", "bench/tables"),
    "TPE on rung points vs TPE on the trials at R, live (committed result)": [
        # four searches of 48 configurations: run by itself (see bench/sampler_live.py)
        "sampler_live.py", "--show", "bench/tables/sampler_live.md",
    ],
    "The variants in turn vs TPE, live (committed result)": [
        "sampler_live.py", "--show", "bench/tables/sampler_balanced.md",
    ],
    "The initial design vs none, live (committed result)": [
        "sampler_live.py", "--show", "bench/tables/sampler_design.md",
    ],
}  # fmt: skip
QUICK = {
    "Trial throughput vs PEFT + transformers.Trainer": ["throughput.py", "--steps", "10", "--repeats", "1"],
    "Learning-curve table: which early signal predicts the final front": [
        "table.py", "--report", "bench/tables/sst2_pilot.csv",
    ],
    "Search strategies replayed on the table: hypervolume vs training steps": [
        "replay.py", "bench/tables/sst2_pilot.csv", "--seeds", "2", "--png", "/tmp/replay.png",
    ],
    **warmup_sections("2", "/tmp"),
    "The AG News table (same R and rungs)": [
        "table.py", "--report", "bench/tables/agnews.csv",
    ],
    "Search strategies replayed on the AG News table (not the one the default was tuned on)": [
        "replay.py", "bench/tables/agnews.csv", "--seeds", "2", "--png", "/tmp/replay_agnews.png",
    ],
    "Multi-fidelity search live vs every trial to R": [
        "fidelity_live.py", "--steps", "27", "--trials", "4", "--full-trials", "2",
        "--eval-samples", "200",
    ],
    "Refit of the replayed search's pick vs the table's best (committed result)": [
        "refit_check.py", "--show", "bench/tables/sst2_refit.md",
    ],
    "The same on AG News (committed result)": [
        "refit_check.py", "--show", "bench/tables/agnews_refit.md",
    ],
    "Variants at their defaults, and full fine-tuning": [
        "variants.py", "--steps", "8", "--seeds", "0", "--eval-samples", "200",
        "--variants", "lora,vera",
    ],
    "LoRA-FA activation memory": ["lora_fa_memory.py", "--batch-size", "8"],
    "Parameter budgets vs full fine-tuning (issue 14; committed results only)": [
        "budget.py", "--report", *BUDGET_RESULTS,
    ],
    "Batch prediction vs PEFT + transformers pipeline": [
        "predict_throughput.py", "--rows", "256", "--steps", "5", "--repeats", "1", "--threads", "1",
    ],
    **short_warmup_sections("2", "/tmp"),
    "TPE on rung points vs TPE on the trials at R, live": [
        "sampler_live.py", "--steps", "27", "--trials", "4", "--train-samples", "300",
        "--eval-samples", "64",
    ],
    "The variants in turn vs TPE, live": [
        "sampler_live.py", "--samplers", "balanced,tpe", "--steps", "27", "--trials", "4",
        "--train-samples", "300", "--eval-samples", "64",
    ],
    "The initial design vs none, live": [
        "sampler_live.py", "--samplers", "tpe,tpe", "--old-settings", "initial_design=0",
        "--steps", "27", "--trials", "4", "--train-samples", "300", "--eval-samples", "64",
    ],
}  # fmt: skip


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"{cpu}, {os.cpu_count()} cores, GPU: {gpu}; Python {platform.python_version()}, "
        f"torch {torch.__version__}"
    )


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=str(HERE.parent / "BENCHMARKS.md"))
    parser.add_argument(
        "--only",
        help="comma-separated scripts or their arguments (e.g. replay.py,fidelity_live.py, or "
        "bench/tables/agnews.csv) whose sections re-run; the other sections are kept from "
        "--output as they were made",
    )
    args = parser.parse_args()
    suite = QUICK if args.quick else FULL
    only = set(args.only.split(",")) if args.only else {command[0] for command in suite.values()}
    unknown = {item for item in only if not any(item in c for c in suite.values())}
    if unknown:
        raise SystemExit(f"--only: no benchmark {', '.join(sorted(unknown))} in the suite")
    kept = read_sections(Path(args.output)) if args.only else {}
    sections, start = [], time.perf_counter()
    for title, command in suite.items():
        if not only.intersection(command):
            sections.append((title, kept.get(title, ["not run yet"])))
            continue
        sections.append((title, run_one(title, command)))
    total = time.perf_counter() - start
    lines = [
        "# Benchmarks"
        + (" (quick mode: small budgets, not headline numbers)" if args.quick else ""),
        "",
        f"Made by `python bench/run_all.py{' --quick' if args.quick else ''}` "
        f"(`make bench{'-quick' if args.quick else ''}`); each section names its command, its "
        f"time, its date and commit"
        + (f" (this run: {total / 60:.1f} min, commit {commit()})." if not args.only else "")
        + (last_full_run(Path(args.output)) if args.only else ""),
        f"Machine: {full_run_machine(Path(args.output)) if args.only else machine()}.",
        "Every ratio is against a baseline measured in the same run.",
    ]
    for number, (title, body) in enumerate(sections, 1):
        lines += ["", f"## {number}. {title}", "", *body]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output} in {total / 60:.1f} min", file=sys.stderr)


def run_one(title: str, command: list[str]) -> list[str]:
    """Run one benchmark script; its section's lines (the command line, then its output)."""
    if command[0] == "workers.py" and not os.environ.get("LORASEARCH_TEST_POSTGRES"):
        return ["skipped: no PostgreSQL (run `make services`)"]
    if command[0] == "budget.py" and not any((HERE.parent / p).exists() for p in command[2:]):
        # hours of training (see bench/budget.py): run alone, on a GPU; here only its report
        return ["not run yet: `python bench/budget.py --task sst2` (and `--task agnews`)"]
    print(f"== {title}: {' '.join(command)}", file=sys.stderr, flush=True)
    began = time.perf_counter()
    run = subprocess.run(
        [sys.executable, str(HERE / command[0]), *command[1:]],
        capture_output=True, text=True, env=os.environ | {"LORASEARCH_QUIET": "1"},
        cwd=HERE.parent,  # the commands name the tables from the repository's root
    )  # fmt: skip
    seconds = time.perf_counter() - began
    if run.returncode != 0:
        tail = "\n".join(run.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"{command[0]} failed:\n{tail}")
    print(run.stdout.strip().splitlines()[-1], file=sys.stderr, flush=True)
    made = f"{seconds:.0f} s; {datetime.date.today()}, commit {commit()}"
    return [f"`python bench/{' '.join(command)}` ({made})", "", run.stdout.strip()]


def last_full_run(path: Path) -> str:
    """What an earlier BENCHMARKS.md said of its last full run's time, for a partial re-run."""
    old = path.read_text() if path.exists() else ""
    found = re.search(r" \((?:this|last full) run: ([0-9.]+ min[^)]*)\)\.", old)
    return f" (last full run: {found.group(1)})." if found else "."


def full_run_machine(path: Path) -> str:
    """The machine an earlier BENCHMARKS.md names (its full run's), kept by a partial re-run:
    the kept sections were measured there. The current machine when there is none."""
    old = path.read_text() if path.exists() else ""
    found = re.search(r"^Machine: (.*)\.$", old, re.MULTILINE)
    return found.group(1) if found else machine()


def read_sections(path: Path) -> dict[str, list[str]]:
    """The sections of an earlier BENCHMARKS.md: title -> its lines (after the heading)."""
    sections: dict[str, list[str]] = {}
    if not path.exists():
        return sections
    body: list[str] | None = None
    for line in path.read_text().splitlines():
        if line.startswith("## ") and ". " in line:
            body = sections.setdefault(line.split(". ", 1)[1], [])
        elif body is not None:
            body.append(line)
    return {title: _trim(lines) for title, lines in sections.items()}


def _trim(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


if __name__ == "__main__":
    run_script(main)

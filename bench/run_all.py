"""Run the benchmark suite and write BENCHMARKS.md: a table per benchmark, its command, the machine.

    python bench/run_all.py [--quick] [--output BENCHMARKS.md]

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
import subprocess
import sys
import time
from pathlib import Path

from lorasearch.errors import run_script

HERE = Path(__file__).parent

FULL = {
    "Trial throughput vs PEFT + transformers.Trainer": ["throughput.py", "--steps", "100"],
    "Search overhead, early stopping, sampler efficiency": [
        "search.py", "--trials", "16", "--steps", "30", "--seeds", "0,1", "--sampler-trials", "10",
    ],
    "Variants at their defaults, and full fine-tuning": [
        "variants.py", "--steps", "80", "--seeds", "0,1,2", "--eval-samples", "500",
    ],
    "LoRA-FA activation memory": ["lora_fa_memory.py"],
    "Many workers: 1 vs 2 on one PostgreSQL study": ["workers.py", "--trials", "6", "--steps", "20"],
}  # fmt: skip
QUICK = {
    "Trial throughput vs PEFT + transformers.Trainer": ["throughput.py", "--steps", "10", "--repeats", "1"],
    "Search overhead, early stopping, sampler efficiency": [
        "search.py", "--trials", "3", "--steps", "4", "--seeds", "0", "--sampler-trials", "2",
        "--eval-samples", "100",
    ],
    "Variants at their defaults, and full fine-tuning": [
        "variants.py", "--steps", "8", "--seeds", "0", "--eval-samples", "200",
        "--variants", "lora,vera",
    ],
    "LoRA-FA activation memory": ["lora_fa_memory.py", "--batch-size", "8"],
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
    args = parser.parse_args()
    suite = QUICK if args.quick else FULL
    sections, start = [], time.perf_counter()
    for title, command in suite.items():
        if command[0] == "workers.py" and not os.environ.get("LORASEARCH_TEST_POSTGRES"):
            sections.append((title, command, "skipped: no PostgreSQL (run `make services`)", 0.0))
            continue
        print(f"== {title}: {' '.join(command)}", file=sys.stderr, flush=True)
        began = time.perf_counter()
        run = subprocess.run(
            [sys.executable, str(HERE / command[0]), *command[1:]],
            capture_output=True, text=True, env=os.environ | {"LORASEARCH_QUIET": "1"},
        )  # fmt: skip
        seconds = time.perf_counter() - began
        if run.returncode != 0:
            tail = "\n".join(run.stderr.strip().splitlines()[-5:])
            raise SystemExit(f"{command[0]} failed:\n{tail}")
        sections.append((title, command, run.stdout.strip(), seconds))
        print(run.stdout.strip().splitlines()[-1], file=sys.stderr, flush=True)
    total = time.perf_counter() - start
    lines = [
        "# Benchmarks"
        + (" (quick mode: small budgets, not headline numbers)" if args.quick else ""),
        "",
        f"Made by `python bench/run_all.py{' --quick' if args.quick else ''}` "
        f"(`make bench{'-quick' if args.quick else ''}`) on {datetime.date.today()}, commit "
        f"{commit()}, in {total / 60:.1f} min.",
        f"Machine: {machine()}.",
        "Every ratio is against a baseline measured in the same run.",
    ]
    for number, (title, command, output, seconds) in enumerate(sections, 1):
        lines += [
            "",
            f"## {number}. {title}",
            "",
            f"`python bench/{' '.join(command)}` ({seconds:.0f} s)",
            "",
            output,
        ]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output} in {total / 60:.1f} min", file=sys.stderr)


if __name__ == "__main__":
    run_script(main)

"""Trials per hour with 1 vs 2 workers on one PostgreSQL study (one torch thread per worker).

Each run makes its own databases on the server named by $LORASEARCH_TEST_POSTGRES (an admin URL;
`make services` starts one and prints it), runs `lorasearch search --total-trials N` in 1 then 2
processes, and reads the trials' start and end times back from the study. Printed last: the
ratio of 2-worker to 1-worker throughput (ideal: 2.0 on a machine with 2 free cores).

    python bench/workers.py [--trials 6] [--steps 20] [--model PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna

from lorasearch.errors import run_script
from lorasearch.search.records import TrialRecord

DATA = Path(os.environ.get("LORASEARCH_DATA", Path(__file__).parents[1] / ".." / "shared" / "data"))


def databases(admin: str):
    import sqlalchemy

    engine = sqlalchemy.create_engine(admin, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"lorasearch_bench_{uuid.uuid4().hex[:10]}"
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
        made.append(name)
        return admin.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        with engine.connect() as connection:
            for name in made:
                connection.execute(sqlalchemy.text(f"DROP DATABASE {name} WITH (FORCE)"))
        engine.dispose()

    return make, drop


def run(workers: int, args, storage: str, tracking: str, folder: Path) -> dict:
    command = [
        sys.executable, "-m", "lorasearch.cli", "search", "--task", "sst2",
        "--data", str(DATA / "sst2"), "--variants", "lora", "--steps", str(args.steps),
        "--eval-samples", "300", "--train-samples", "4000", "--storage", storage,
        "--study", "bench", "--total-trials", str(args.trials), "--tracking-uri", tracking,
        "--no-early-stop", "--no-fidelity",  # every trial the same length: throughput alone
    ] + (["--model", args.model] if args.model else [])  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LORASEARCH_QUIET": "1"}
    start = time.perf_counter()
    processes = [
        subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]  # fmt: skip
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"worker failed: {err.strip().splitlines()[-1:]}")
    wall = time.perf_counter() - start
    trials = optuna.load_study(study_name="bench", storage=storage).trials
    ended = [t for t in trials if t.datetime_complete is not None and t.state.name == "COMPLETE"]
    first = min(t.datetime_start for t in ended)
    last = max(t.datetime_complete for t in ended)
    busy = (last - first).total_seconds()
    return {
        "workers": workers,
        "trials": len(ended),
        "wall_s": wall,
        "trials_per_hour_wall": 3600 * len(ended) / wall,
        "trials_per_hour_steady": 3600 * len(ended) / busy,
        "by_worker": sorted({TrialRecord.of(t).worker for t in ended}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", help="default: the bundled MiniLM")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    admin = os.environ.get("LORASEARCH_TEST_POSTGRES")
    if not admin:
        raise SystemExit("set LORASEARCH_TEST_POSTGRES (run `make services`, which prints it)")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    make, drop = databases(admin)
    results = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for workers in (1, 2):
                folder = Path(scratch) / f"w{workers}"
                folder.mkdir()
                results.append(run(workers, args, make(), make(), folder))
    finally:
        drop()
    one, two = results
    ratio_wall = two["trials_per_hour_wall"] / one["trials_per_hour_wall"]
    ratio_steady = two["trials_per_hour_steady"] / one["trials_per_hour_steady"]
    if args.json:
        print(json.dumps({"runs": results, "ratio_wall": ratio_wall, "ratio_steady": ratio_steady}))
        return
    print(f"{os.cpu_count()} CPU cores; MiniLM LoRA trials of {args.steps} steps, batch 32, "
          f"1 torch thread per worker; {args.trials} trials per run")  # fmt: skip
    print("| workers | trials | wall s | trials/hour (wall) | trials/hour (first start→last end) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['workers']} | {r['trials']} | {r['wall_s']:.1f} | "
              f"{r['trials_per_hour_wall']:.0f} | {r['trials_per_hour_steady']:.0f} |")  # fmt: skip
    print(f"2 vs 1 workers: {ratio_wall:.2f}x trials/hour (wall), {ratio_steady:.2f}x steady")


if __name__ == "__main__":
    run_script(main)

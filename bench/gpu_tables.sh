#!/usr/bin/env bash
# The long tables on one GPU, all at once: the budget tables of issue 14 (bench/budget.py, SST-2
# and AG News, the head alone included) and the rest of the AG News learning-curve table of
# issue 13 (bench/table.py).
#
# MiniLM is launch-bound on a GPU (a 6-layer, 384-wide model at batch 32), so one process
# leaves the card mostly idle; this runs a dozen processes side by side, one torch thread
# each: the table in 4 shards, each full fine-tuning rate in its own process, one search per
# task, then each task's refits in REFIT_JOBS shards. Everything is recorded as it ends
# (the table's CSV appended under a lock, budget.py's JSON rewritten whole), so a run cut off at
# STOP_S keeps what finished, and the same command resumes it.
#
#     bench/gpu_tables.sh RESULTS [STOP_S]     # RESULTS: a folder; copy bench/tables in first
#
# On a lent machine with no package index and a 64 MiB carry limit, bench/device/kit.sh packs
# what it needs (wheels, MiniLM in two parts, the data) and says which three calls run this.
#
# Sizes come from the environment (the defaults are the committed tables' settings):
# SEARCH_STEPS (270), SEARCH_TRIALS (48), SST2_REFIT_STEPS (1895, one epoch), REFIT_JOBS (6),
# TABLE_SHARDS (4), TABLE_STEPS (243), TABLE_CONFIGS (32), EXTRA (more arguments for every
# budget.py process, e.g. --train-samples 200 for a smoke run), SUFFIX (appended to the budget
# results' names: other sizes need other files, e.g. SUFFIX=_r810 SEARCH_STEPS=810
# SST2_REFIT_STEPS=5685 for the budget.py defaults: 461 s on an H200 with TABLE_SHARDS=0
# REFIT_JOBS=12 and the full fine-tuning runs already recorded), MIN_STEPS (the searches'
# lowest rung, e.g. 90 at R = 810 to start past the warmup; give it its own SUFFIX).
set -u
results=${1:?usage: bench/gpu_tables.sh RESULTS [STOP_S]}
stop=${2:-480}
here=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p "$results"
log="$results/log.txt"
start=$(date +%s)

left() { echo $((stop - ($(date +%s) - start))); }
# One process, killed at the deadline, its output tagged and appended to the log.
job() {
    local tag=$1
    shift
    local budget
    budget=$(left)
    if [ "$budget" -le 5 ]; then
        echo "[$tag] skipped: no time left" >>"$log"
        return 0
    fi
    timeout "$budget" "$@" 2>&1 | sed -u "s|^|[$tag] |" >>"$log"
    echo "[$tag] exit ${PIPESTATUS[0]} at $(($(date +%s) - start)) s" >>"$log"
}

budget() {  # budget TASK EXTRA-ARGS...: full fine-tuning, search, refits of one task
    local task=$1
    shift
    local common=(--task "$task" --name "budget_$task${SUFFIX:-}" --out "$results"
        --steps "${SEARCH_STEPS:-270}" ${MIN_STEPS:+--min-steps "$MIN_STEPS"}
        --trials "${SEARCH_TRIALS:-48}" "$@" ${EXTRA:-})
    for lr in 2e-5 5e-5 1e-4; do
        job "$task full $lr" python "$here/budget.py" "${common[@]}" --part full --full-lrs "$lr" &
    done
    job "$task probe" python "$here/budget.py" "${common[@]}" --part probe &
    (
        job "$task search" python "$here/budget.py" "${common[@]}" --part search
        jobs=${REFIT_JOBS:-6}
        for k in $(seq 0 $((jobs - 1))); do
            job "$task refit $k/$jobs" python "$here/budget.py" "${common[@]}" --part refits \
                --shard "$k/$jobs" &
        done
        wait
    ) &
}

shards=${TABLE_SHARDS:-4}
for k in $(seq 0 $((shards - 1))); do
    job "table $k/$shards" python "$here/table.py" --task agnews --configs "${TABLE_CONFIGS:-32}" \
        --steps "${TABLE_STEPS:-243}" --eval-samples 500 --out "$results" --shard "$k/$shards" &
done
budget sst2 --refit-steps "${SST2_REFIT_STEPS:-1895}"
budget agnews
wait
echo "all done at $(($(date +%s) - start)) s" >>"$log"

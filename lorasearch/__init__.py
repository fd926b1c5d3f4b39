"""lorasearch: find the best LoRA-family adapter for a labelled text task.

The Python API mirrors the CLI, one call per command, each returning a dataclass whose fields
are the command's ``--json`` keys::

    import lorasearch

    result = lorasearch.train(data="data/sst2", task="sst2", variant="lora", knobs={"rank": 8})
    lorasearch.optimize(data="data/sst2", task="sst2", trials=24, steps=60, study_name="sst2")
    front = lorasearch.report("sst2").front
    chosen = lorasearch.pick("sst2", max_params=200_000, export_dir="my-adapter")
    labels = lorasearch.predict("my-adapter", ["a lovely film"])

Data flows task -> model + adapter -> trainer -> result -> study -> tracking; each step lives in
its own subpackage (``training``, ``adapters``, ``search``, ``tracking``, ``spaces``). Importing
``lorasearch`` is cheap: torch, transformers and optuna load on the first call.
"""

from lorasearch._api import LoadedAdapter, load, optimize, pick, predict, refit, report, train
from lorasearch._results import Pick, RefitReport, RefitRow, SearchReport, TrialRow
from lorasearch.errors import LorasearchError

__version__ = "0.1.0"
__all__ = [
    "LoadedAdapter",
    "LorasearchError",
    "Pick",
    "RefitReport",
    "RefitRow",
    "SearchReport",
    "TrainResult",
    "TrialRow",
    "__version__",
    "load",
    "optimize",
    "pick",
    "predict",
    "refit",
    "report",
    "train",
]


def __getattr__(name: str):
    if name == "TrainResult":  # beside the training loop, which imports torch: loaded on use
        from lorasearch.training.trainer import TrainResult

        return TrainResult
    raise AttributeError(f"module 'lorasearch' has no attribute '{name}'")

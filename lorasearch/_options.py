"""Turning what a caller passes (paths or objects, one task or several) into the trial configs.

The CLI and the Python API share this: a ``datasets``/pandas object becomes a cached data folder
and a loaded model a cached model folder (``training/sources.py``), so everything downstream,
the study's stored record included, sees local paths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict

from lorasearch.errors import LorasearchError


class TaskOptions(TypedDict, total=False):
    """The options ``train`` and ``optimize`` share besides data, task, model and steps."""

    text_column: str | None  # column with the text
    text_pair_column: str | None  # second text column, for sentence-pair tasks
    label_column: str | None  # column with the label (ids or names)
    metric: str | None  # accuracy (default), macro_f1, f1 or mcc
    train_samples: int | None  # a seeded subsample of train
    eval_samples: int | None  # a seeded subsample of dev (test stays whole)
    # A target group (all, ffn, attention, qv: fixes the adapter's ``targets`` knob) or module
    # names to adapt ("query,value"); None: detected.
    targets: str | Sequence[str] | None
    layers: str | None  # which blocks (fixes the ``layers`` knob): all, top-K, every-N, 0,2,5
    trust_remote_code: bool
    batch_size: int
    max_length: int  # tokens per example
    eval_every: int | None  # dev evaluation interval in steps; None: steps/5
    warmup_ratio: float
    weight_decay: float
    group_by_length: bool  # batch examples of similar length (less padding)
    seed: int
    device: str  # auto, cpu, cuda or cuda:N


DEFAULTS: dict[str, Any] = {
    "text_column": None,
    "text_pair_column": None,
    "label_column": None,
    "metric": None,
    "train_samples": None,
    "eval_samples": None,
    "targets": None,
    "layers": None,
    "trust_remote_code": False,
    "batch_size": 32,
    "max_length": 64,
    "eval_every": None,
    "warmup_ratio": 0.06,
    "weight_decay": 0.0,
    "group_by_length": True,
    "seed": 0,
    "device": "auto",
}


def with_defaults(function: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` over :data:`DEFAULTS`; an unknown name is a TypeError, as for any keyword."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"{function}() got an unexpected keyword argument '{unknown[0]}'")
    return DEFAULTS | options


def as_list(value) -> list:
    """None, one value or several (a list or tuple) as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def numbers(option: str, text: str | None) -> list[float]:
    """A comma-separated list of numbers (``--lr-scales 0.5,2``); None is none."""
    if text is None:
        return []
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise LorasearchError(f"{option} takes numbers separated by commas, got '{text}'") from None


def one(value, name: str, command: str):
    """The single ``--task`` / ``--data`` a command takes (``search`` takes several)."""
    values = as_list(value)
    if len(values) > 1:
        raise LorasearchError(f"{command} takes one --{name}; search takes several")
    return values[0] if values else None


def data_source(data) -> str | None:
    """A path or hub id as given; a DataFrame / Dataset / DatasetDict as its cached folder."""
    if data is None or isinstance(data, str):
        return data
    if isinstance(data, os.PathLike):
        return str(data)
    from lorasearch.training.sources import dataset_source

    return dataset_source(data)


def model_source(model, tokenizer) -> str | None:
    """A hub id or folder as given; a loaded ``PreTrainedModel`` (with its tokenizer) as its
    cached folder."""
    if model is None or isinstance(model, str | os.PathLike):
        if tokenizer is not None:
            raise LorasearchError(
                "tokenizer= goes with a loaded model; a model id or folder brings its own"
            )
        return None if model is None else str(model)
    from lorasearch.training import sources

    return sources.model_source(model, tokenizer)


def configs(task, data, model, steps: int, options: dict[str, Any]):
    """``(DataConfig, ModelConfig, TrainConfig)`` for one task; ``data`` and ``model`` are
    already sources (strings)."""
    from lorasearch.training.trainer import TrainConfig
    from lorasearch.training.trial import DataConfig, ModelConfig

    if task is None and data is None:
        raise LorasearchError("give --task NAME and/or --data PATH")
    data_config = DataConfig(
        task=task, data=data,
        **{k: options[k] for k in ("text_column", "text_pair_column", "label_column", "metric",
                                   "train_samples", "eval_samples")},
    )  # fmt: skip
    targets = module_targets(options["targets"])
    model_config = ModelConfig(
        model=model,
        targets=tuple(targets) if targets else None,
        trust_remote_code=options["trust_remote_code"],
    )
    train_config = TrainConfig(
        steps=steps,
        **{k: options[k] for k in ("batch_size", "max_length", "eval_every", "warmup_ratio",
                                   "weight_decay", "group_by_length", "seed", "device")},
    )  # fmt: skip
    return data_config, model_config, train_config


def module_targets(targets) -> list[str] | None:
    """The model-level module names ``--targets`` gives; None for a target group (the adapter's
    ``targets`` knob, see :func:`placement_knobs`) or nothing (detected)."""
    from lorasearch.adapters.placement import TARGET_GROUPS

    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    if targets and len(targets) == 1 and targets[0] in TARGET_GROUPS:
        return None
    return list(targets) if targets else None


def placement_knobs(options: dict[str, Any]) -> dict[str, str]:
    """The placement knobs ``--targets GROUP`` and ``--layers SPEC`` fix (validated)."""
    from lorasearch.adapters.placement import TARGET_GROUPS, check_layers, normalize_layers

    knobs = {}
    targets = options["targets"]
    targets = [targets.strip()] if isinstance(targets, str) else list(targets or [])
    if len(targets) == 1 and targets[0] in TARGET_GROUPS:
        knobs["targets"] = targets[0]
    if options["layers"] is not None:
        knobs["layers"] = normalize_layers(options["layers"])
        check_layers(knobs["layers"])
    return knobs


def task_jobs(task, data) -> list[tuple[str | None, Any]]:
    """One (task, data) pair per task: data given once per task, or one folder of task folders
    (each named after its task), or none (the presets' hub ids)."""
    tasks, data = as_list(task), as_list(data)
    if len(tasks) <= 1:
        return [(tasks[0] if tasks else None, one(data, "data", "search"))]
    if len(set(tasks)) != len(tasks):
        raise LorasearchError("a --task is given twice")
    if len(data) == len(tasks):
        return list(zip(tasks, data, strict=True))
    if len(data) == 1 and isinstance(data[0], str | os.PathLike) and Path(data[0]).is_dir():
        pairs = [(name, str(Path(data[0]) / name)) for name in tasks]
        missing = [p for _, p in pairs if not Path(p).exists()]
        if missing:
            raise LorasearchError(f"no folder {missing[0]} for its --task under --data {data[0]}")
        return pairs
    if not data:
        return [(name, None) for name in tasks]
    raise LorasearchError(
        f"{len(tasks)} --task but {len(data)} --data: give one --data per task, "
        "or one folder holding a folder per task"
    )


def search_space(space, variants):
    """The space in force: the default (narrowed to ``variants``), a TOML/YAML file's, a dict
    shaped like such a file, or a ``SearchSpace`` as is."""
    from lorasearch.spaces import SearchSpace, load_space_file

    if isinstance(variants, str):
        variants = [v.strip() for v in variants.split(",") if v.strip()]
    chosen = list(variants) if variants else None
    if space is None:
        return SearchSpace.default(chosen)
    if isinstance(space, SearchSpace):
        return space
    if isinstance(space, dict):
        listed = space.get("variants")
        if isinstance(listed, str):
            listed = [v.strip() for v in listed.split(",")]
        return SearchSpace.default(chosen or listed).override(space)
    return load_space_file(space, chosen)


def fix_placement(space, options: dict[str, Any]):
    """The space with ``--targets GROUP`` / ``--layers SPEC`` fixed for every variant drawn."""
    fixed = placement_knobs(options)
    return space.override({"all": fixed}) if fixed else space


def full_budget(steps: int | None, max_steps: int | None, default: int = 300) -> int:
    """A search's full budget R: ``--max-steps``, or ``--steps`` alone (the same thing)."""
    if steps is not None and max_steps is not None and steps != max_steps:
        raise LorasearchError(
            f"--steps {steps} and --max-steps {max_steps} disagree: in a search both set the "
            "full budget R; give one"
        )
    budget = max_steps if max_steps is not None else steps
    return default if budget is None else budget


def trial_count(trials: int | None, total_trials: int | None) -> tuple[int, bool]:
    """``(n, total)``: trials to add, or (total) the study's target of ended trials."""
    if (trials is None) == (total_trials is None):
        raise LorasearchError("give --trials N (trials to add) or --total-trials N (a target)")
    return (trials, False) if trials is not None else (total_trials, True)


def check_export_dir(directory: Path, force: bool) -> None:
    """An export never lands in a non-empty folder unless ``force``."""
    if directory.exists() and not directory.is_dir():
        raise LorasearchError(f"--export {directory} exists and is not a folder")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise LorasearchError(
            f"--export folder {directory} is not empty (pass --force to overwrite)"
        )


def parse_settings(settings: Sequence[str], config_class) -> dict[str, Any]:
    """``--set key=value`` pairs, each value converted to the knob's declared type."""
    import dataclasses

    types = {f.name: str(f.type) for f in dataclasses.fields(config_class)}
    knobs = {}
    for item in settings:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise LorasearchError(f"--set expects KEY=VALUE, got '{item}'")
        if key not in types:
            raise LorasearchError(f"unknown knob '{key}'; this variant's knobs: {', '.join(types)}")
        knobs[key] = _coerce(key, types[key], value.strip())
    return knobs


def _coerce(key: str, type_name: str, value: str):
    if value.lower() == "none" and "None" in type_name:
        return None
    for name, convert in (("bool", _to_bool), ("int", int), ("float", float)):
        if type_name.startswith(name):
            try:
                return convert(value)
            except ValueError:
                raise LorasearchError(f"knob '{key}' expects {name}, got '{value}'") from None
    return value


def _to_bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)

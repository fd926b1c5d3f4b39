"""Labelled text tasks: presets, loading (hub id or local files), splits and label mapping.

A task ends as a :class:`TaskData`: three splits of plain Python lists plus the label names, so
the trainer never needs to know where the data came from.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

from lorasearch.errors import LorasearchError, first_line, looks_like_path
from lorasearch.training.metrics import METRICS

DATA_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
}
SPLIT_ALIASES = {
    "train": ("train",),
    "dev": ("dev", "validation", "valid", "val"),
    "test": ("test",),
}
CARVE_FRACTION = 0.1


@dataclass(frozen=True)
class TaskSpec:
    """What to read from the data: columns, metric, label order and where it lives on the hub."""

    name: str
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    metric: str = "accuracy"
    label_names: tuple[str, ...] | None = None  # fixed order; None: sorted labels seen in train
    hub_id: str | None = None
    hub_splits: dict[str, str] = field(default_factory=dict)  # our split -> the hub's split name


PRESETS: dict[str, TaskSpec] = {
    "sst2": TaskSpec(
        name="sst2",
        text_column="sentence",
        label_names=("0", "1"),
        hub_id="stanfordnlp/sst2",
        # GLUE hides test labels: papers report on validation, and dev is carved from train.
        hub_splits={"train": "train", "test": "validation"},
    ),
    "agnews": TaskSpec(
        name="agnews",
        text_column="text",
        label_names=("World", "Sports", "Business", "Sci/Tech"),
        hub_id="fancyzhx/ag_news",
        hub_splits={"train": "train", "test": "test"},
    ),
    "mrpc": TaskSpec(
        name="mrpc",
        text_column="sentence1",
        text_pair_column="sentence2",
        metric="f1",
        label_names=("0", "1"),
        hub_id="nyu-mll/glue",
        hub_splits={"train": "train", "dev": "validation", "test": "test"},
    ),
    "rte": TaskSpec(
        name="rte",
        text_column="sentence1",
        text_pair_column="sentence2",
        label_names=("0", "1"),
        hub_id="nyu-mll/glue",
        hub_splits={"train": "train", "dev": "validation", "test": "test"},
    ),
    "cola": TaskSpec(
        name="cola",
        text_column="sentence",
        metric="mcc",
        label_names=("0", "1"),
        hub_id="nyu-mll/glue",
        hub_splits={"train": "train", "dev": "validation", "test": "test"},
    ),
}


@dataclass
class Split:
    """One split: texts (and optional second texts) with integer label ids."""

    texts: list[str]
    labels: list[int]
    text_pairs: list[str] | None = None
    source: str = ""  # where it came from, e.g. "dev.tsv" or "carved 10% of train"

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: list[int], source: str | None = None) -> Split:
        pairs = [self.text_pairs[i] for i in indices] if self.text_pairs is not None else None
        return Split(
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            text_pairs=pairs,
            source=source or self.source,
        )


@dataclass
class TaskData:
    """A loaded task: train/dev/test splits, label names (index = label id) and the metric."""

    spec: TaskSpec
    train: Split
    dev: Split
    test: Split
    label_names: list[str]
    fingerprint: str  # identifies the exact rows, for caches

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def split_summary(self) -> dict[str, dict[str, object]]:
        return {
            name: {"rows": len(split), "source": split.source}
            for name, split in (("train", self.train), ("dev", self.dev), ("test", self.test))
        }


def data_root() -> Path:
    """The shared real-data folder: ``$LORASEARCH_DATA`` or ``../shared/data``."""
    return Path(os.environ.get("LORASEARCH_DATA", "../shared/data"))


def resolve_spec(
    task: str | None,
    *,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    metric: str | None = None,
) -> TaskSpec:
    """A preset by name (or a blank custom task) with the user's column and metric overrides."""
    if task is None or task == "custom":
        spec = TaskSpec(name="custom", label_names=None)
    elif task in PRESETS:
        spec = PRESETS[task]
    else:
        raise LorasearchError(
            f"unknown task '{task}'; known: {', '.join(sorted(PRESETS))} "
            "(or omit --task and give --text-column/--label-column)"
        )
    overrides = {
        "text_column": text_column,
        "text_pair_column": text_pair_column,
        "label_column": label_column,
        "metric": metric,
    }
    spec = replace(spec, **{k: v for k, v in overrides.items() if v is not None})
    if spec.metric not in METRICS:
        raise LorasearchError(f"unknown metric '{spec.metric}'; known: {', '.join(METRICS)}")
    return spec


def load_task(
    spec: TaskSpec,
    data: str | None,
    *,
    train_samples: int | None = None,
    eval_samples: int | None = None,
    seed: int = 0,
) -> TaskData:
    """Load ``data`` (a local file/folder, or a hub dataset id) into a :class:`TaskData`.

    A missing dev split is carved (seeded, 10%) from train, and so is a missing test split.
    ``train_samples`` subsamples train and ``eval_samples`` subsamples dev, both seeded; the test
    split is always used whole so the final number is comparable across runs.
    """
    for name, value in (("--train-samples", train_samples), ("--eval-samples", eval_samples)):
        if value is not None and value <= 0:
            raise LorasearchError(f"{name} must be positive, got {value}")
    source = data or spec.hub_id
    if source is None:
        raise LorasearchError(f"task '{spec.name}' has no hub dataset: pass --data PATH")
    raw = _load_raw(spec, source)
    for split_name, (table, _) in raw.items():
        _check_columns(spec, table, split_name, source)
    if "train" not in raw:
        raise LorasearchError(f"no train split in {source} (expected a train.* file or split)")

    label_names = _label_names(spec, raw)
    splits = {
        name: _to_split(spec, table, label_names, name, origin)
        for name, (table, origin) in raw.items()
    }
    rng = random.Random(seed)
    train = splits["train"]
    n_carve = max(1, round(CARVE_FRACTION * len(train)))  # 10% of the original train, each
    for missing in ("dev", "test"):
        if missing not in splits:
            if len(train) - n_carve < 1:
                raise LorasearchError(
                    f"train split of {source} is too small to carve a {missing} split"
                )
            order = list(range(len(train)))
            rng.shuffle(order)
            splits[missing] = train.subset(order[:n_carve], f"carved 10% of train (seed {seed})")
            train = train.subset(order[n_carve:])
    for name, split in (("train", train), ("dev", splits["dev"]), ("test", splits["test"])):
        if len(split) == 0:
            raise LorasearchError(f"the {name} split of {source} is empty")

    if train_samples is not None and train_samples < len(train):
        train = train.subset(random.Random(seed + 1).sample(range(len(train)), train_samples))
    dev = splits["dev"]
    if eval_samples is not None and eval_samples < len(dev):
        dev = dev.subset(random.Random(seed + 2).sample(range(len(dev)), eval_samples))

    fingerprint = _fingerprint(spec, label_names, train, dev, splits["test"])
    return TaskData(spec, train, dev, splits["test"], label_names, fingerprint)


# --- loading -------------------------------------------------------------------------------------


def _load_raw(spec: TaskSpec, source: str) -> dict:
    """Our split name -> (a ``datasets.Dataset``, where it came from)."""
    path = Path(source).expanduser()
    if path.exists():
        return {name: (_read_file(file), file.name) for name, file in _local_files(path).items()}
    if looks_like_path(source, tuple(DATA_EXTENSIONS)):
        raise LorasearchError(f"data path not found: {source}")
    return _load_hub(spec, source)


def _local_files(path: Path) -> dict[str, Path]:
    if path.is_file():
        if path.suffix.lower() not in DATA_EXTENSIONS:
            raise LorasearchError(
                f"unsupported data file {path.name}; use one of {', '.join(DATA_EXTENSIONS)}"
            )
        return {"train": path}
    files: dict[str, Path] = {}
    for split, stems in SPLIT_ALIASES.items():
        for candidate in sorted(path.iterdir()):
            if candidate.stem.lower() in stems and candidate.suffix.lower() in DATA_EXTENSIONS:
                files.setdefault(split, candidate)
    if "train" not in files:
        raise LorasearchError(
            f"no train split in {path}: expected train.csv/.tsv/.json/.jsonl/.parquet"
        )
    return files


def _read_file(path: Path):
    import datasets

    builder = DATA_EXTENSIONS[path.suffix.lower()]
    kwargs: dict = {}
    if builder == "csv":
        # Plain delimited text: no quoting (SST-2 has bare quotes) and no "NA" -> NaN guessing.
        kwargs = {
            "delimiter": "\t" if path.suffix.lower() == ".tsv" else ",",
            "quoting": csv.QUOTE_NONE if path.suffix.lower() == ".tsv" else csv.QUOTE_MINIMAL,
            "keep_default_na": False,
        }
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train", **kwargs)
    except Exception as exc:  # the loaders raise many types; the file is what the user can fix
        if _has_no_rows(path):
            raise LorasearchError(f"data file {path} is empty (no rows)") from None
        raise LorasearchError(f"cannot read {path}: {first_line(exc)}") from None


def _has_no_rows(path: Path) -> bool:
    """True for a zero-byte file or a delimited file holding only its header."""
    if path.stat().st_size == 0:
        return True
    if DATA_EXTENSIONS[path.suffix.lower()] != "csv":
        return False
    with path.open() as handle:
        lines = [line for _, line in zip(range(2), handle, strict=False) if line.strip()]
    return len(lines) <= 1


def _load_hub(spec: TaskSpec, source: str) -> dict:
    import datasets

    config = spec.name if spec.hub_id == "nyu-mll/glue" and source == spec.hub_id else None
    try:
        loaded = datasets.load_dataset(source, config)
    except Exception as exc:
        raise LorasearchError(
            f"cannot load dataset '{source}' from the Hugging Face Hub ({first_line(exc)}); "
            "pass a local file or folder with --data"
        ) from None
    mapping = spec.hub_splits if source == spec.hub_id and spec.hub_splits else {}
    raw = {}
    for ours, aliases in SPLIT_ALIASES.items():
        names = [mapping[ours]] if ours in mapping else list(aliases)
        for name in names:
            if name in loaded:
                table = loaded[name]
                if ours == "test" and spec.label_column in table.column_names:
                    labels = set(table.unique(spec.label_column))
                    if labels == {-1}:  # hidden test labels (GLUE): carve instead
                        break
                raw[ours] = (table, f"{source}:{name}")
                break
    return raw


def _check_columns(spec: TaskSpec, table, split: str, source: str) -> None:
    columns = table.column_names
    wanted = [
        ("text", spec.text_column, "--text-column"),
        ("label", spec.label_column, "--label-column"),
    ]
    if spec.text_pair_column:
        wanted.append(("text pair", spec.text_pair_column, "--text-pair-column"))
    for what, column, flag in wanted:
        if column not in columns:
            raise LorasearchError(
                f"{what} column '{column}' not in the {split} split of {source} "
                f"(columns: {', '.join(columns)}); set {flag}"
            )


def _label_names(spec: TaskSpec, raw: dict) -> list[str]:
    train_labels = {_label_str(v) for v in _column(raw["train"][0], spec.label_column)}
    if spec.label_names is not None:
        names = list(spec.label_names)
        unknown = train_labels - set(names)
        if unknown:
            raise LorasearchError(
                f"train labels {sorted(unknown)[:5]} are not among task '{spec.name}' labels {names}"
            )
        return names
    if len(train_labels) < 2:
        raise LorasearchError(
            f"the train split needs at least 2 distinct labels, found {len(train_labels)}"
        )
    numeric = all(_is_int(v) for v in train_labels)
    return sorted(train_labels, key=(lambda v: int(v)) if numeric else None)


def _to_split(spec: TaskSpec, table, label_names: list[str], split: str, origin: str) -> Split:
    index = {name: i for i, name in enumerate(label_names)}
    labels = []
    for value in _column(table, spec.label_column):
        key = _label_str(value)
        if key not in index:
            raise LorasearchError(
                f"label '{key}' in the {split} split never appears in train "
                f"(train labels: {', '.join(label_names)})"
            )
        labels.append(index[key])
    texts = [_text(v) for v in _column(table, spec.text_column)]
    pairs = (
        [_text(v) for v in _column(table, spec.text_pair_column)] if spec.text_pair_column else None
    )
    return Split(texts=texts, labels=labels, text_pairs=pairs, source=origin)


def _column(table, name: str) -> list:
    """A column as a list, read from Arrow in one call (iterating a ``Dataset`` column goes row
    by row: 1 s for SST-2's train labels)."""
    if getattr(table, "_indices", None) is None and hasattr(table, "data"):
        return table.data.column(name).to_pylist()
    return list(table[name])


def _label_str(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def _text(value) -> str:
    return "" if value is None else str(value)


def _fingerprint(spec: TaskSpec, label_names: list[str], *splits: Split) -> str:
    digest = hashlib.sha256()
    digest.update(repr((spec.name, spec.text_column, spec.text_pair_column, label_names)).encode())
    for split in splits:
        digest.update(b"\x00split")
        for i, text in enumerate(split.texts):
            digest.update(text.encode())
            digest.update(b"\x01")
            if split.text_pairs is not None:
                digest.update(split.text_pairs[i].encode())
            digest.update(str(split.labels[i]).encode())
    return digest.hexdigest()[:16]

"""In-memory inputs as sources: a dataset or a loaded model becomes a content-addressed folder.

The Python API accepts a ``datasets.Dataset`` / ``DatasetDict``, a pandas DataFrame (or a dict of
split name -> either), and a loaded ``PreTrainedModel`` with its tokenizer. Each is written once
to a folder under the cache (``$LORASEARCH_CACHE``, default ``~/.cache/lorasearch``) named by a
hash of its content, and everything downstream — loading, tokenization caches, the study's
record, resuming, workers on the same machine, exports — sees an ordinary local folder. Passing
the same object again (in this process or another) gives the same folder, so a study searched on
a DataFrame resumes when given that DataFrame again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from lorasearch.errors import LorasearchError, first_line
from lorasearch.training.tasks import SPLIT_ALIASES


def cache_root() -> Path:
    return Path(os.environ.get("LORASEARCH_CACHE", "~/.cache/lorasearch")).expanduser()


def is_dataset_object(obj) -> bool:
    """A DataFrame, a ``datasets`` Dataset/DatasetDict, or a dict of split -> either."""
    if isinstance(obj, dict):
        return bool(obj) and all(_is_table(v) for v in obj.values())
    return _is_table(obj) or type(obj).__name__ in ("DatasetDict", "IterableDatasetDict")


def _is_table(obj) -> bool:
    kind = type(obj).__name__
    return (kind == "DataFrame" and hasattr(obj, "columns")) or (
        kind == "Dataset" and hasattr(obj, "column_names")
    )


def dataset_source(obj) -> str:
    """The cache folder holding ``obj``'s splits as ``train/dev/test.parquet``.

    A single table is the train split (dev and test are then carved from it, as for a single
    local file); a dict or ``DatasetDict`` names its splits (``validation``/``valid``/``val`` are
    dev). ``ClassLabel`` columns are written as their label names.
    """
    frames = {split: _frame(table) for split, table in _splits(obj).items()}
    digest = hashlib.sha256()
    for split in sorted(frames):
        frame = frames[split]
        digest.update(f"\x00{split}\x00{list(frame.columns)}\x00{list(frame.dtypes)}".encode())
        digest.update(_hash_frame(frame))
    return str(
        _store("data", digest.hexdigest()[:20], lambda folder: _write_frames(frames, folder))
    )


def _splits(obj) -> dict:
    if _is_table(obj):
        return {"train": obj}
    if not is_dataset_object(obj):
        raise LorasearchError(
            f"data must be a path, a hub id, a pandas DataFrame, a datasets Dataset/DatasetDict "
            f"or a dict of split -> DataFrame/Dataset, got {type(obj).__name__}"
        )
    splits = {}
    for name, table in obj.items():
        ours = next((s for s, aliases in SPLIT_ALIASES.items() if name.lower() in aliases), None)
        if ours is None:
            raise LorasearchError(
                f"unknown split '{name}' in the data (use train, dev/validation, test)"
            )
        if ours in splits:
            raise LorasearchError(f"the data has two {ours} splits")
        splits[ours] = table
    if "train" not in splits:
        raise LorasearchError("the data has no train split")
    return splits


def _frame(table):
    """A pandas DataFrame of ``table`` with ``ClassLabel`` ids replaced by their names."""
    if type(table).__name__ == "DataFrame":
        return table.reset_index(drop=True)
    frame = table.to_pandas()
    for name, feature in table.features.items():
        if type(feature).__name__ == "ClassLabel":
            frame[name] = [feature.int2str(int(v)) if v >= 0 else "-1" for v in frame[name]]
    return frame


def _hash_frame(frame) -> bytes:
    import pandas as pd

    try:
        return pd.util.hash_pandas_object(frame, index=False).values.tobytes()
    except TypeError:  # unhashable cells (lists, dicts): hash their text
        return pd.util.hash_pandas_object(frame.astype(str), index=False).values.tobytes()


def _write_frames(frames: dict, folder: Path) -> None:
    for split, frame in frames.items():
        try:
            frame.to_parquet(folder / f"{split}.parquet", index=False)
        except Exception as exc:  # pyarrow refuses mixed-type object columns, for one
            raise LorasearchError(f"cannot store the {split} split: {first_line(exc)}") from None


def model_source(model, tokenizer) -> str:
    """The cache folder holding a loaded ``PreTrainedModel`` and its tokenizer (``save_pretrained``
    once; named by a hash of the saved files, so the same weights give the same folder)."""
    if not hasattr(model, "save_pretrained") or not hasattr(model, "config"):
        raise LorasearchError(
            f"model must be a hub id, a folder, or a transformers PreTrainedModel, "
            f"got {type(model).__name__}"
        )
    if tokenizer is None or not hasattr(tokenizer, "save_pretrained"):
        raise LorasearchError("a loaded model needs its tokenizer (pass tokenizer=...)")
    with tempfile.TemporaryDirectory(prefix="lorasearch-model-") as scratch:
        scratch = Path(scratch)
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        digest = hashlib.sha256()
        for file in sorted(scratch.rglob("*")):
            if file.is_file():
                digest.update(file.relative_to(scratch).as_posix().encode() + b"\x00")
                with file.open("rb") as handle:
                    for block in iter(lambda h=handle: h.read(1 << 22), b""):
                        digest.update(block)
        return str(
            _store("models", digest.hexdigest()[:20], lambda folder: _copy_tree(scratch, folder))
        )


def _copy_tree(source: Path, folder: Path) -> None:
    for item in source.iterdir():
        target = folder / item.name
        shutil.copytree(item, target) if item.is_dir() else shutil.copy2(item, target)


def _store(kind: str, key: str, write) -> Path:
    """``cache/kind/key``, written by ``write(folder)`` unless already there; the folder appears
    whole or not at all (written beside it, then renamed), so concurrent writers are safe."""
    folder = cache_root() / kind / key
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
    try:
        write(scratch)
        os.rename(scratch, folder)
    except OSError:
        if not folder.is_dir():
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder

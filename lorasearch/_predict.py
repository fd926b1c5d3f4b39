"""Prediction with an export (``lorasearch predict``): texts in, label names (and probabilities)
out; and the file side of the command, CSV/TSV/JSON/JSONL rows in, the same rows plus
``prediction`` (and ``probability_<label>``) out.

Everything the user can get wrong (the adapter folder, the input file, its columns) is checked
before the model loads, and the output is written only once every row is predicted.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lorasearch._load import EVAL_BATCH_SIZE, LoadedAdapter, load, read_metadata
from lorasearch.errors import LorasearchError, first_line

FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".jsonl": "jsonl"}
PREDICTION = "prediction"
# Plain delimited text as training reads it: TSV unquoted (SST-2 has bare quotes), CSV quoted.
DIALECTS = {
    "csv": {"delimiter": ",", "quoting": csv.QUOTE_MINIMAL},
    "tsv": {"delimiter": "\t", "quoting": csv.QUOTE_NONE, "quotechar": None},
}


def probability_column(label: str) -> str:
    return f"probability_{label}"


def predict(
    adapter: str | Path | LoadedAdapter,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    *,
    batch_size: int = EVAL_BATCH_SIZE,
    probabilities: bool = False,
    device: str = "auto",
) -> list[str] | list[dict[str, Any]]:
    """Classify ``texts`` (with ``pairs``, the second texts, for a sentence-pair adapter) with an
    export: its folder, or one already loaded (:func:`lorasearch.load`; ``device`` is then its).

    Returns the predicted label names; with ``probabilities``, one dict per text holding
    ``prediction`` and a ``probability_<label>`` per label (the rows of ``lorasearch predict
    --probabilities --json``). Texts are batched by token length as training evaluates them and
    come back in the order given.
    """
    loaded = adapter if isinstance(adapter, LoadedAdapter) else _load(adapter, device)
    predicted, probs = loaded.scores(texts, pairs, batch_size)
    if not probabilities:
        return [loaded.label_names[i] for i in predicted]
    return [_columns(loaded, i, p, True) for i, p in zip(predicted, probs, strict=True)]


def _load(directory, device: str) -> LoadedAdapter:
    from lorasearch._quiet import quiet_libraries

    quiet_libraries()
    return load(directory, device=device)


def _columns(loaded: LoadedAdapter, label_id: int, probs: list[float], with_probs: bool) -> dict:
    row: dict[str, Any] = {PREDICTION: loaded.label_names[label_id]}
    if with_probs:
        row |= {probability_column(n): p for n, p in zip(loaded.label_names, probs, strict=True)}
    return row


# --- the command: files and --text -----------------------------------------------------------


@dataclass
class Table:
    """Rows read from a file: their columns in file order, and the format they came in."""

    columns: list[str]
    rows: list[dict[str, Any]]
    format: str


def predict_file(
    adapter_dir: str | Path,
    input_file: str | Path,
    output_file: str | Path | None = None,
    *,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    probabilities: bool = False,
    as_json: bool = False,
    device: str = "auto",
    progress: Callable[[int], Any] | None = None,  # total -> a context yielding update(done)
) -> str | None:
    """Predict every row of ``input_file`` and write the rows plus ``prediction`` (and the
    probabilities) to ``output_file`` in its extension's format, or return them as text in the
    input's format (JSON Lines with ``as_json``). ``progress(total)`` is a context manager that
    yields the bar's ``update(done)``."""
    input_file = Path(input_file)
    meta = read_metadata(adapter_dir)
    out_format = _output_format(input_file, output_file, as_json)
    table = read_table(input_file)
    text_column = text_column or meta.get("text_column") or "text"
    pair_column = _pair_column(meta, text_pair_column)
    wanted = [
        ("text", text_column, "--text-column"),
        ("text pair", pair_column, "--text-pair-column"),
    ]
    for what, column, flag in wanted:
        if column is not None and column not in table.columns:
            raise LorasearchError(
                f"{what} column '{column}' not in {input_file} "
                f"(columns: {', '.join(table.columns)}); set {flag}"
            )
    _check_batch_size(batch_size)
    texts = [_text(row.get(text_column)) for row in table.rows]
    pairs = [_text(row.get(pair_column)) for row in table.rows] if pair_column else None
    loaded = _load(adapter_dir, device)
    with _bar(progress, len(texts)) as update:
        predicted, probs = loaded.scores(texts, pairs, batch_size, progress=update)
    added = [_columns(loaded, i, p, probabilities) for i, p in zip(predicted, probs, strict=True)]
    rows = [row | extra for row, extra in zip(table.rows, added, strict=True)]
    columns = table.columns + [c for c in added[0] if c not in table.columns]
    text = render(Table(columns, rows, out_format))
    if output_file is None:
        return text
    write_atomically(Path(output_file), text)
    return None


def predict_texts(
    adapter_dir: str | Path,
    texts: Sequence[str],
    pairs: Sequence[str] = (),
    *,
    batch_size: int = EVAL_BATCH_SIZE,
    probabilities: bool = False,
    as_json: bool = False,
    device: str = "auto",
) -> str:
    """``--text``: one line per text, the label (tab, then ``label=probability`` per label with
    ``probabilities``); with ``as_json`` one JSON object per text, the text and its columns."""
    meta = read_metadata(adapter_dir)
    if pairs and not meta.get("text_pair_column"):
        raise LorasearchError("--text-pair given, but this adapter was trained on single texts")
    if meta.get("text_pair_column") and len(pairs) != len(texts):
        raise LorasearchError(
            f"this adapter was trained on sentence pairs ('{meta['text_column']}', "
            f"'{meta['text_pair_column']}'): give one --text-pair per --text "
            f"({len(texts)} --text, {len(pairs)} --text-pair)"
        )
    _check_batch_size(batch_size)
    loaded = _load(adapter_dir, device)
    predicted, probs = loaded.scores(list(texts), list(pairs) or None, batch_size)
    lines = []
    for n, (label_id, p) in enumerate(zip(predicted, probs, strict=True)):
        columns = _columns(loaded, label_id, p, probabilities)
        if as_json:
            given = {"text": texts[n]} | ({"text_pair": pairs[n]} if pairs else {})
            lines.append(json.dumps(given | columns, ensure_ascii=False))
        elif probabilities:
            shares = [
                f"{label}={columns[probability_column(label)]:.4f}" for label in loaded.label_names
            ]
            lines.append("\t".join([columns[PREDICTION], *shares]))
        else:
            lines.append(columns[PREDICTION])
    return "".join(line + "\n" for line in lines)


def _pair_column(meta: dict, given: str | None) -> str | None:
    trained = meta.get("text_pair_column")
    if given and not trained:
        raise LorasearchError(
            f"--text-pair-column {given} given, but this adapter was trained on single texts"
        )
    return (given or trained) if trained else None


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise LorasearchError(f"--batch-size must be at least 1, got {batch_size}")


def _text(value) -> str:
    return "" if value is None else str(value)


def _bar(progress, total: int):
    import contextlib

    return progress(total) if progress is not None else contextlib.nullcontext(None)


# --- reading and writing ---------------------------------------------------------------------


def file_format(path: Path, flag: str) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise LorasearchError(
            f"{flag} {path}: unknown format '{path.suffix or path.name}'; use {', '.join(FORMATS)}"
        )
    return fmt


def _output_format(input_file: Path, output_file, as_json: bool) -> str:
    """``--output``'s extension's format; on stdout JSON Lines with ``--json``, else the
    input's format."""
    in_format = file_format(input_file, "--input")
    if output_file is None:
        return "jsonl" if as_json else in_format
    output_file = Path(output_file)
    if output_file.is_dir():
        raise LorasearchError(f"--output {output_file} is a folder")
    if not output_file.parent.is_dir():
        raise LorasearchError(f"--output folder {output_file.parent} does not exist")
    return file_format(output_file, "--output")


def read_table(path: Path) -> Table:
    """The rows of a CSV/TSV/JSON/JSONL file, read as plain text (no type guessing)."""
    fmt = file_format(path, "--input")
    if not path.is_file():
        raise LorasearchError(f"input file {path} not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
        table = _parse_delimited(text, fmt) if fmt in DIALECTS else _parse_json(text, fmt)
    except (UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise LorasearchError(f"cannot read {path}: {first_line(exc)}") from None
    if not table.rows:
        raise LorasearchError(f"input file {path} is empty (no rows)")
    return table


def _parse_delimited(text: str, fmt: str) -> Table:
    reader = csv.DictReader(io.StringIO(text, newline=""), **DIALECTS[fmt])
    rows = []
    for row in reader:
        if None in row or None in row.values():
            raise ValueError(
                f"line {reader.line_num} does not have the header's {len(reader.fieldnames)} fields"
            )
        rows.append(row)
    return Table(list(reader.fieldnames or []), rows, fmt)


def _parse_json(text: str, fmt: str) -> Table:
    if fmt == "json" and text.lstrip().startswith("["):
        rows = json.loads(text)
    else:  # JSON Lines (what a .json file also often holds)
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError("expected JSON objects, one per row")
    columns: dict[str, None] = {}
    for row in rows:
        columns |= dict.fromkeys(row)
    return Table(list(columns), rows, fmt)


def render(table: Table) -> str:
    """``table`` as the text of a file in ``table.format``."""
    if table.format in ("json", "jsonl"):
        lines = [json.dumps(row, ensure_ascii=False) for row in table.rows]
        if table.format == "jsonl":
            return "".join(line + "\n" for line in lines)
        return "[\n" + ",\n".join(lines) + "\n]\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, table.columns, lineterminator="\n", **DIALECTS[table.format])
    writer.writeheader()
    try:
        writer.writerows(table.rows)
    except csv.Error as exc:
        raise LorasearchError(f"cannot write {table.format.upper()}: {first_line(exc)}") from None
    return out.getvalue()


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file beside it: all or nothing."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

"""Batch prediction throughput: `lorasearch predict`'s path vs PEFT + a transformers pipeline.

One LoRA adapter on MiniLM, trained a few steps on SST-2 and exported to a temporary folder,
labels the rows of sst2/test.tsv two ways in this process, on CPU, with the same torch threads
and batch size:

- lorasearch: ``lorasearch.load(dir)`` + ``LoadedAdapter.predict`` (what ``lorasearch predict``
  runs);
- baseline: what a user writes by hand, ``PeftModel.from_pretrained(AutoModelFor
  SequenceClassification.from_pretrained(base), dir)`` + ``transformers.pipeline(
  "text-classification", ..., batch_size=same)`` over the texts.

Model loading is excluded from both (timed apart, from files in the OS cache, and printed);
tokenization is included in both. Each path has a warm-up pass, then the best of ``--repeats``
timed passes (the two paths alternate, so load from other processes falls on both alike). The
labels of the two are compared.

    python bench/predict_throughput.py [--rows N] [--batch-size 128] [--steps 20] [--repeats 3]
        [--threads N]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

from lorasearch._load import EVAL_BATCH_SIZE
from lorasearch._quiet import quiet_libraries
from lorasearch.errors import run_script
from lorasearch.training.tasks import data_root


def read_texts(path: Path, rows: int | None) -> list[str]:
    with open(path, newline="") as handle:
        table = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [row["sentence"] for row in table[:rows]]


def export_adapter(directory: Path, steps: int) -> None:
    """A LoRA r=8 adapter (lr 3e-3: 40 steps reach test 0.77) trained briefly and exported."""
    import lorasearch

    lorasearch.train(
        data=str(data_root() / "sst2"), task="sst2", variant="lora", knobs={"lr": 3e-3},
        steps=steps, train_samples=2000, eval_samples=64, eval_every=steps, export_dir=directory,
    )  # fmt: skip


def ours(directory: Path, batch_size: int):
    """``(load seconds, predict(texts) -> labels)`` on lorasearch's path."""
    import lorasearch
    from lorasearch.training import models

    models._BASE_CACHE.clear()  # loaded from disk as the baseline is, not from training's copy
    tick = time.perf_counter()
    loaded = lorasearch.load(directory, device="cpu")
    return time.perf_counter() - tick, lambda texts: loaded.predict(texts, batch_size=batch_size)


def baseline(directory: Path, batch_size: int):
    """``(load seconds, predict(texts) -> labels)``: PEFT on the base model, and a pipeline."""
    import json

    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    tick = time.perf_counter()
    meta = json.loads((directory / "lorasearch.json").read_text())
    names = meta["label_names"]
    base = AutoModelForSequenceClassification.from_pretrained(
        meta["base_model"],
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={name: i for i, name in enumerate(names)},
    )
    model = PeftModel.from_pretrained(base, str(directory)).eval()
    tokenizer = AutoTokenizer.from_pretrained(meta["base_model"])
    classify = pipeline(
        "text-classification", model=model, tokenizer=tokenizer, batch_size=batch_size,
        device="cpu",
    )  # fmt: skip
    seconds = time.perf_counter() - tick

    def predict(texts: list[str]) -> list[str]:
        out = classify(texts, truncation=True, max_length=meta["max_length"])
        return [row["label"] for row in out]

    return seconds, predict


def padded_tokens(directory: Path, texts: list[str], batch_size: int) -> tuple[int, int, int]:
    """Tokens the model sees: ``(real, padded in length order, padded in input order)``; the
    pipeline pads each batch of consecutive texts to its longest."""
    import json

    from transformers import AutoTokenizer

    from lorasearch.training.data import eval_batches

    meta = json.loads((directory / "lorasearch.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(meta["base_model"])
    lengths = [
        len(ids)
        for ids in tokenizer(texts, truncation=True, max_length=meta["max_length"])["input_ids"]
    ]
    in_order = [
        list(range(j, min(j + batch_size, len(texts)))) for j in range(0, len(texts), batch_size)
    ]

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    return sum(lengths), padded(eval_batches(lengths, batch_size)), padded(in_order)


def timed(predict, texts: list[str], times: list[float]) -> list[str]:
    """One timed pass, its seconds appended to ``times``; its labels."""
    tick = time.perf_counter()
    labels = predict(texts)
    times.append(time.perf_counter() - tick)
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="first N test rows (default all)")
    parser.add_argument("--batch-size", type=int, default=EVAL_BATCH_SIZE)
    parser.add_argument("--steps", type=int, default=20, help="training steps of the adapter")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: as is)")
    args = parser.parse_args()
    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    texts = read_texts(data_root() / "sst2" / "test.tsv", args.rows)
    with tempfile.TemporaryDirectory(prefix="predict-bench-") as scratch:
        directory = Path(scratch) / "adapter"
        export_adapter(directory, args.steps)
        paths = {
            "lorasearch load + predict": ours(directory, args.batch_size),
            "PEFT + transformers pipeline": baseline(directory, args.batch_size),
        }
        real, *padded = padded_tokens(directory, texts, args.batch_size)
        times: dict[str, list[float]] = {name: [] for name in paths}
        labels: dict[str, list[str]] = {}
        for _, predict in paths.values():
            predict(texts[: args.batch_size * 2])  # warm-up
        for _ in range(args.repeats):
            for name, (_, predict) in paths.items():
                labels[name] = timed(predict, texts, times[name])
    rate = {name: len(texts) / min(seconds) for name, seconds in times.items()}
    print(
        f"MiniLM + LoRA r=8 ({args.steps} training steps), sst2/test.tsv {len(texts)} rows, "
        f"batch {args.batch_size}, torch threads: {torch.get_num_threads()}, CPU; "
        f"best of {args.repeats} after a warm-up; model load excluded (load s: apart)"
    )
    print(f"| path | examples/s | best s | tokens with padding (real: {real:,}) | load s |")
    print("|---|---|---|---|---|")
    for (name, (load_s, _)), tokens in zip(paths.items(), padded, strict=True):
        print(
            f"| {name} | {rate[name]:,.0f} | {min(times[name]):.2f} | {tokens:,} "
            f"({1 - real / tokens:.0%} padding) | {load_s:.1f} |"
        )
    ours_labels, base_labels = labels.values()
    agree = sum(a == b for a, b in zip(ours_labels, base_labels, strict=True))
    print(f"same predicted label: {agree}/{len(texts)}")
    first, second = rate.values()
    print(f"lorasearch vs pipeline: {first / second:.2f}x examples/s")


if __name__ == "__main__":
    run_script(main)

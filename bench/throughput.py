"""Trial throughput: `lorasearch train` vs PEFT + transformers.Trainer as its docs show.

Same model (bundled MiniLM), data (SST-2 train), LoRA r=8 alpha 16 dropout 0.05 on query, key,
value, dense (+ the classifier trained), batch 32, max length 64, lr 1e-3, same steps; evaluation
is off in the timed part of both. Rows:

- Trainer, docs default: `tokenizer(..., truncation=True, max_length=64)`, `DataCollatorWithPadding`,
  random batches (each padded to its longest example).
- Trainer with length-grouped sampling (`train_sampling_strategy="group_by_length"`, which
  Transformers 4 called `group_by_length=True`).
- lorasearch (length-grouped batches, cached tokenization, fused AdamW, no per-step host sync
  on accelerators), and lorasearch with grouping off (what grouping buys).

Steps/s and real (non-pad) tokens/s per row; printed last: lorasearch's steps/s as a ratio of
each Trainer row, measured in the same run.

    python bench/throughput.py [--steps 100] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time

import torch

from lorasearch._quiet import quiet_libraries
from lorasearch.adapters import build_adapter
from lorasearch.training.models import default_model
from lorasearch.training.tasks import data_root
from lorasearch.training.trainer import TrainConfig
from lorasearch.training.trial import DataConfig, ModelConfig, Trial, load_data, run_trial

TARGETS = ["query", "key", "value", "dense"]


def trainer_row(steps: int, group_by_length: bool) -> dict:
    """PEFT + Trainer the way the PEFT and Transformers docs write it."""
    import datasets
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    path = default_model()
    tokenizer = AutoTokenizer.from_pretrained(path)
    train = datasets.load_dataset(
        "csv",
        data_files=str(data_root() / "sst2" / "train.tsv"),
        delimiter="\t",
        quoting=3,
        split="train",
    )
    tokenized = train.map(
        lambda batch: tokenizer(batch["sentence"], truncation=True, max_length=64),
        batched=True,
        remove_columns=["sentence"],
    )
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16, lora_dropout=0.05, target_modules=TARGETS
    )
    model = get_peft_model(model, config)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=32,
            learning_rate=1e-3,
            max_steps=steps,
            warmup_steps=int(0.06 * steps),
            logging_strategy="no",
            save_strategy="no",
            report_to=[],
            **_grouping(group_by_length),
            seed=0,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=tokenized,
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its summary dict
            trainer.train()
        seconds = time.perf_counter() - start
    mean_length = sum(len(ids) for ids in tokenized["input_ids"]) / len(tokenized)
    return {
        "row": "Trainer" + (" grouped by length" if group_by_length else " (docs default)"),
        "steps_per_second": steps / seconds,
        "tokens_per_second": steps * 32 * mean_length / seconds,  # expected real tokens
        "seconds": seconds,
    }


def _grouping(on: bool) -> dict:
    """Transformers 5 spells it ``train_sampling_strategy``; 4.x had ``group_by_length``."""
    import inspect

    from transformers import TrainingArguments

    if "train_sampling_strategy" in inspect.signature(TrainingArguments.__init__).parameters:
        return {"train_sampling_strategy": "group_by_length" if on else "random"}
    return {"group_by_length": on}


def lorasearch_row(steps: int, group_by_length: bool) -> dict:
    data = DataConfig(task="sst2", data=str(data_root() / "sst2"), eval_samples=200)
    load_data(data)  # loading and tokenizing are outside the timed loop for both sides
    trial = Trial(
        data=data,
        model=ModelConfig(targets=tuple(TARGETS)),
        adapter=build_adapter("lora", rank=8, alpha=16, dropout=0.05, lr=1e-3),
        train=TrainConfig(steps=steps, eval_every=steps, group_by_length=group_by_length),
    )
    result = run_trial(trial)
    return {
        "row": "lorasearch train" + ("" if group_by_length else " --no-group-by-length"),
        "steps_per_second": result.steps_per_second,
        "tokens_per_second": result.tokens_per_second,
        "seconds": result.train_time_s,
        "test_accuracy": result.test_metric,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    quiet_libraries()
    rows = [
        trainer_row(args.steps, group_by_length=False),
        trainer_row(args.steps, group_by_length=True),
        lorasearch_row(args.steps, group_by_length=True),
        lorasearch_row(args.steps, group_by_length=False),
    ]
    ours = rows[2]["steps_per_second"]
    ratios = {
        "vs_trainer_default": ours / rows[0]["steps_per_second"],
        "vs_trainer_grouped": ours / rows[1]["steps_per_second"],
    }
    if args.json:
        print(json.dumps({"steps": args.steps, "rows": rows, "ratios": ratios}))
        return
    print(f"MiniLM, SST-2, LoRA r=8, batch 32, max length 64, {args.steps} steps, "
          f"{torch.get_num_threads()} torch threads, CPU")  # fmt: skip
    print("| row | steps/s | real tokens/s | train s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['row']} | {r['steps_per_second']:.2f} | {r['tokens_per_second']:,.0f} | "
              f"{r['seconds']:.1f} |")  # fmt: skip
    print(f"lorasearch vs Trainer: {ratios['vs_trainer_default']:.2f}x (docs default), "
          f"{ratios['vs_trainer_grouped']:.2f}x (grouped by length)")  # fmt: skip


if __name__ == "__main__":
    main()

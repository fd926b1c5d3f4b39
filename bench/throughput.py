"""Trial throughput: `lorasearch train` vs PEFT + transformers.Trainer as its docs show.

Same model (bundled MiniLM), data (SST-2 train), LoRA r=8 alpha 16 dropout 0.05 on query, key,
value, dense (+ the classifier trained), batch 32, max length 64, lr 1e-3, same steps; evaluation
is off in the timed part of both. Rows:

- Trainer, docs default: `tokenizer(..., truncation=True, max_length=64)`, `DataCollatorWithPadding`,
  random batches (each padded to its longest example).
- Trainer with length-grouped sampling (`train_sampling_strategy="group_by_length"`, which
  Transformers 4 called `group_by_length=True`).
- lorasearch (length-grouped batches, cached tokenization, fused AdamW, int32 dropout masks on
  CPU, no per-step host sync on accelerators); the same with native dropout masks (what the
  profile's biggest item buys) and with grouping off (what grouping buys).

Per row: steps/s, and real (non-pad) and padded tokens/s counted by one hook on the word
embeddings, so both sides are measured alike. The two headline rows run ``--repeats`` times,
interleaved. Printed last: lorasearch's steps/s as a ratio of each Trainer row, measured in the
same run, and its real tokens/s against the grouped Trainer's (batches drawn differ per side).

    python bench/throughput.py [--steps 100] [--repeats 2] [--json]
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
from lorasearch.errors import run_script
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
    return {
        "row": "Trainer" + (" grouped by length" if group_by_length else " (docs default)"),
        "steps_per_second": steps / seconds,
        "seconds": seconds,
    }


def _grouping(on: bool) -> dict:
    """Transformers 5 spells it ``train_sampling_strategy``; 4.x had ``group_by_length``."""
    import inspect

    from transformers import TrainingArguments

    if "train_sampling_strategy" in inspect.signature(TrainingArguments.__init__).parameters:
        return {"train_sampling_strategy": "group_by_length" if on else "random"}
    return {"group_by_length": on}


def lorasearch_row(steps: int, group_by_length: bool, fast: bool = True) -> dict:
    data = DataConfig(task="sst2", data=str(data_root() / "sst2"), eval_samples=200)
    load_data(data)  # loading and tokenizing are outside the timed loop for both sides
    trial = Trial(
        data=data,
        model=ModelConfig(targets=tuple(TARGETS)),
        adapter=build_adapter("lora", rank=8, alpha=16, dropout=0.05, lr=1e-3),
        train=TrainConfig(
            steps=steps, eval_every=steps, group_by_length=group_by_length, fast_dropout=fast
        ),
    )
    result = run_trial(trial)
    name = "lorasearch train" + ("" if group_by_length else " --no-group-by-length")
    return {
        "row": name + ("" if fast else ", native dropout masks"),
        "steps_per_second": result.steps_per_second,
        "seconds": result.train_time_s,
        "test_accuracy": result.test_metric,
    }


class TokenCounter:
    """Counts the tokens each training forward really processes, the same way on both sides: a
    hook on the word-embedding lookup sees every batch's padded ids."""

    def __init__(self, vocab_size: int, pad_id: int):
        self.vocab_size, self.pad_id = vocab_size, pad_id
        self.real = self.padded = 0

    def __enter__(self) -> TokenCounter:
        from torch import nn

        def hook(module, args):
            if isinstance(module, nn.Embedding) and module.training:
                if module.num_embeddings == self.vocab_size:
                    ids = args[0]
                    self.real += int((ids != self.pad_id).sum())
                    self.padded += ids.numel()

        self._handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()


def measured(row, vocab_size: int, pad_id: int, **kwargs) -> dict:
    with TokenCounter(vocab_size, pad_id) as counter:
        result = row(**kwargs)
    result["tokens_per_second"] = counter.real / result["seconds"]
    result["padded_tokens_per_second"] = counter.padded / result["seconds"]
    result["padding"] = 1 - counter.real / max(counter.padded, 1)
    return result


def mean_row(runs: list[dict]) -> dict:
    """Repeated runs of one row: rates averaged, seconds summed."""
    row = dict(runs[0])
    for key in ("steps_per_second", "tokens_per_second", "padded_tokens_per_second", "padding"):
        row[key] = sum(r[key] for r in runs) / len(runs)
    row["runs"] = len(runs)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2, help="runs of the two headline rows")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    quiet_libraries()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(default_model())
    vocab, pad = len(tokenizer), tokenizer.pad_token_id
    steps = args.steps
    # The two rows the 1.2x target compares run interleaved, so drift in the machine's speed
    # lands on both; the batches each draws differ, so real tokens/s is reported beside steps/s.
    grouped, ours = [], []
    for _ in range(args.repeats):
        grouped.append(measured(trainer_row, vocab, pad, steps=steps, group_by_length=True))
        ours.append(measured(lorasearch_row, vocab, pad, steps=steps, group_by_length=True))
    rows = [
        measured(trainer_row, vocab, pad, steps=steps, group_by_length=False),
        mean_row(grouped),
        mean_row(ours),
        measured(lorasearch_row, vocab, pad, steps=steps, group_by_length=True, fast=False),
        measured(lorasearch_row, vocab, pad, steps=steps, group_by_length=False),
    ]
    ours_row = rows[2]
    ratios = {
        "vs_trainer_default": ours_row["steps_per_second"] / rows[0]["steps_per_second"],
        "vs_trainer_grouped": ours_row["steps_per_second"] / rows[1]["steps_per_second"],
        "tokens_vs_trainer_grouped": ours_row["tokens_per_second"] / rows[1]["tokens_per_second"],
        "fast_dropout": ours_row["steps_per_second"] / rows[3]["steps_per_second"],
    }
    if args.json:
        print(json.dumps({"steps": steps, "rows": rows, "ratios": ratios}))
        return
    print(f"MiniLM, SST-2, LoRA r=8 (dropout 0.05), batch 32, max length 64, {steps} steps, "
          f"{torch.get_num_threads()} torch threads, CPU; Trainer grouped and lorasearch: mean of "
          f"{args.repeats} interleaved runs")  # fmt: skip
    print("| row | steps/s | real tokens/s | padded tokens/s | padding | train s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['row']} | {r['steps_per_second']:.2f} | {r['tokens_per_second']:,.0f} | "
              f"{r['padded_tokens_per_second']:,.0f} | {r['padding']:.0%} | "
              f"{r['seconds']:.1f} |")  # fmt: skip
    print(f"fast dropout masks: {ratios['fast_dropout']:.2f}x steps/s over native dropout")
    print(f"lorasearch vs Trainer: {ratios['vs_trainer_default']:.2f}x (docs default), "
          f"{ratios['vs_trainer_grouped']:.2f}x (grouped by length) in steps/s; "
          f"{ratios['tokens_vs_trainer_grouped']:.2f}x in real tokens/s vs grouped")  # fmt: skip


if __name__ == "__main__":
    run_script(main)

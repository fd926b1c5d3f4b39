"""LoRA-FA vs LoRA: activation memory kept for backward, at the same rank and batch.

Activation memory is measured exactly and device-independently: every tensor autograd saves for
the backward pass goes through ``torch.autograd.graph.saved_tensors_hooks`` and its bytes are
summed (each storage once). Peak process memory is printed too, but on CPU it is noisy.

    python bench/lora_fa_memory.py [--rank 8] [--batch-size 32] [--max-length 64]
"""

from __future__ import annotations

import argparse

import torch

from lorasearch._quiet import quiet_libraries
from lorasearch.adapters import InjectContext, build_adapter
from lorasearch.errors import run_script
from lorasearch.training.data import collate, tokenize_task
from lorasearch.training.models import load_model
from lorasearch.training.tasks import PRESETS, data_root, load_task


def saved_activation_bytes(model, batch) -> int:
    """Bytes of distinct storages autograd keeps between forward and backward."""
    seen: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(**batch).loss
    loss.backward()
    frozen = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(
        size for ptr, size in seen.items() if ptr not in frozen
    )  # weights aren't activations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    quiet_libraries()

    task = load_task(PRESETS["sst2"], str(data_root() / "sst2"), train_samples=2000)
    results = {}
    for variant in ("lora", "lora_fa"):
        loaded = load_model(None, task.label_names, seed=0)
        data = tokenize_task(task, loaded.tokenizer, args.max_length)
        # The longest examples, so the batch is padded to max length: the worst case.
        order = sorted(range(len(data["train"])), key=lambda i: -data["train"].lengths[i])
        batch = collate(data["train"], order[: args.batch_size], loaded.tokenizer.pad_token_id)
        adapter = build_adapter(variant, rank=args.rank)  # same default dropout for both
        placed = adapter.placed_targets(loaded.target_modules)
        context = InjectContext(loaded.head_modules, placed, seed=0)
        model = adapter.inject(loaded.model, context)
        torch.manual_seed(0)
        results[variant] = saved_activation_bytes(model, batch)
        print(
            f"{variant:8s} activation memory saved for backward: {results[variant] / 2**20:8.1f} MiB"
        )
    length = batch["input_ids"].shape[1]
    print(f"rank {args.rank}, batch {args.batch_size} x {length} tokens, all-MiniLM-L6-v2")
    print(f"ratio LoRA / LoRA-FA activation memory: {results['lora'] / results['lora_fa']:.2f}x")


if __name__ == "__main__":
    run_script(main)

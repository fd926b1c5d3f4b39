"""Tokenization (cached per task, tokenizer and max length) and length-grouped batches."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from lorasearch.training.tasks import Split, TaskData

_CACHE: OrderedDict[tuple, dict[str, TokenizedSplit]] = OrderedDict()
_CACHE_SIZE = 4
GROUP_FACTOR = 50  # a shuffled window of this many batches is sorted by length, then cut


@dataclass
class TokenizedSplit:
    """Token ids per example (unpadded) and labels; padding happens per batch."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)

    @functools.cached_property
    def lengths(self) -> list[int]:
        """Tokens per example, computed once: the loop reads it every step."""
        return [len(ids) for ids in self.input_ids]


def tokenize_task(task: TaskData, tokenizer, max_length: int) -> dict[str, TokenizedSplit]:
    """Tokenize every split once; later calls with the same key return the cached result."""
    key = (task.fingerprint, _tokenizer_key(tokenizer), max_length)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    result = {
        name: _tokenize_split(split, tokenizer, max_length)
        for name, split in (("train", task.train), ("dev", task.dev), ("test", task.test))
    }
    _CACHE[key] = result
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return result


def _tokenizer_key(tokenizer) -> tuple:
    return (
        type(tokenizer).__name__,
        tokenizer.name_or_path,
        len(tokenizer),
        tokenizer.padding_side,
    )


def _tokenize_split(split: Split, tokenizer, max_length: int) -> TokenizedSplit:
    encoded = tokenizer(
        split.texts,
        split.text_pairs,
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
    )
    token_types = encoded.get("token_type_ids")
    return TokenizedSplit(encoded["input_ids"], token_types, list(split.labels))


def collate(split: TokenizedSplit, indices: list[int], pad_id: int, pad_left: bool = False) -> dict:
    """Pad the chosen examples to the longest among them."""
    longest = max(len(split.input_ids[i]) for i in indices)
    ids = torch.full((len(indices), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(indices), longest), dtype=torch.long)
    types = torch.zeros((len(indices), longest), dtype=torch.long) if split.token_type_ids else None
    for row, i in enumerate(indices):
        seq = split.input_ids[i]
        span = slice(longest - len(seq), longest) if pad_left else slice(0, len(seq))
        ids[row, span] = torch.tensor(seq)
        mask[row, span] = 1
        if types is not None:
            types[row, span] = torch.tensor(split.token_type_ids[i])
    batch = {"input_ids": ids, "attention_mask": mask}
    if types is not None:
        batch["token_type_ids"] = types
    batch["labels"] = torch.tensor([split.labels[i] for i in indices])
    return batch


def train_batches(
    lengths: list[int], batch_size: int, seed: int, group_by_length: bool = True
) -> Iterator[list[int]]:
    """Endless seeded batches of indices; each batch holds examples of similar length.

    Every epoch shuffles, sorts windows of ``GROUP_FACTOR`` batches by length, cuts them into
    batches and shuffles the batch order, so padding is small and order stays random. Without
    ``group_by_length`` the window is one batch: plain shuffled batches.
    """
    generator = torch.Generator().manual_seed(seed)
    window = batch_size * (GROUP_FACTOR if group_by_length else 1)
    while True:
        order = torch.randperm(len(lengths), generator=generator).tolist()
        batches = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
            batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
        for b in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[b]


def eval_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Batches in length order: least padding for evaluation, where order does not matter."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[j : j + batch_size] for j in range(0, len(order), batch_size)]

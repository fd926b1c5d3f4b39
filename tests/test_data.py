"""Tokenization cache and length-grouped batching."""

import torch

from lorasearch.training.data import (
    TokenizedSplit,
    collate,
    eval_batches,
    tokenize_task,
    train_batches,
)
from lorasearch.training.tasks import TaskSpec, load_task


def _take(iterator, n):
    return [next(iterator) for _ in range(n)]


def test_each_epoch_covers_every_example_once():
    lengths = [((i * 37) % 50) + 1 for i in range(1000)]
    epoch = _take(train_batches(lengths, 32, seed=0), 32)  # ceil(1000 / 32) = 32 batches
    flat = [i for batch in epoch for i in batch]
    assert sorted(flat) == list(range(1000))


def test_batches_are_seeded_and_grouped_by_length():
    lengths = [((i * 37) % 50) + 1 for i in range(1600)]
    a = _take(train_batches(lengths, 32, seed=0), 50)
    assert a == _take(train_batches(lengths, 32, seed=0), 50)
    assert a != _take(train_batches(lengths, 32, seed=1), 50)
    grouped = sum(max(lengths[i] for i in b) * len(b) for b in a)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    shuffled = [order[j : j + 32] for j in range(0, 1600, 32)]
    random_padded = sum(max(lengths[i] for i in b) * len(b) for b in shuffled)
    assert grouped < 0.6 * random_padded  # grouping removes most of the padding


def test_eval_batches_cover_in_length_order():
    lengths = [5, 1, 3, 2, 4]
    assert eval_batches(lengths, 2) == [[1, 3], [2, 4], [0]]


def test_collate_pads_to_longest_in_batch():
    split = TokenizedSplit(
        input_ids=[[5, 6, 7], [8], [9, 9]], token_type_ids=None, labels=[1, 0, 1]
    )
    batch = collate(split, [1, 2], pad_id=0)
    assert batch["input_ids"].tolist() == [[8, 0], [9, 9]]
    assert batch["attention_mask"].tolist() == [[1, 0], [1, 1]]
    assert batch["labels"].tolist() == [0, 1]
    left = collate(split, [1, 2], pad_id=0, pad_left=True)
    assert left["input_ids"].tolist() == [[0, 8], [9, 9]]


def test_tokenization_is_cached_per_task_tokenizer_and_length(toy_data, tiny_bert):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    task = load_task(TaskSpec(name="toy", text_column="sentence"), str(toy_data))
    first = tokenize_task(task, tokenizer, 16)
    assert tokenize_task(task, tokenizer, 16) is first
    shorter = tokenize_task(task, tokenizer, 4)
    assert shorter is not first and max(shorter["train"].lengths) == 4
    assert first["train"].input_ids[0] == tokenizer(task.train.texts[0])["input_ids"][:16]

"""What evaluation costs: a rung scores chunks several at once yet stops exactly where the
chunk-by-chunk rule stops; CPU evaluation batches are capped; a search scores no dev point
twice and a front trial's test once."""

import math
from types import SimpleNamespace

import pytest
import torch
from conftest import toy_fixed

from lorasearch.search.config import SearchConfig
from lorasearch.search.records import trial_records
from lorasearch.search.study import run_search
from lorasearch.spaces import SearchSpace
from lorasearch.training import trainer
from lorasearch.training import trial as trial_module
from lorasearch.training.data import TokenizedSplit
from lorasearch.training.evaluation import (
    RUNG_MIN_EXAMPLES,
    RUNG_SE_NATS,
    LossTally,
    chunks_ahead,
    needs_more_examples,
    rung_chunk_size,
    rung_chunks,
)
from lorasearch.training.metrics import compute_metric
from lorasearch.training.trainer import TrainConfig, evaluate, evaluate_subsample

CPU = torch.device("cpu")
CONFIG = TrainConfig(eval_batch_size=128, seed=2)  # chunks of 64
N = 1000


def test_chunks_ahead_reaches_the_minimum_then_the_spread_s_estimate():
    assert chunks_ahead(LossTally(), 64) == RUNG_MIN_EXAMPLES // 64 == 2  # no stop before
    assert chunks_ahead(LossTally(), 50) == 3
    assert chunks_ahead(LossTally([0.7] * 128), 64) == 1  # nothing to estimate: one chunk
    tally = LossTally([0.1, 1.3] * 64)  # sample variance 0.36 * 128 / 127
    assert tally.variance == pytest.approx(0.36 * 128 / 127)
    needed = math.ceil(tally.variance / RUNG_SE_NATS**2)  # 908 examples
    assert chunks_ahead(tally, 64) == math.ceil((needed - 128) / 64) == 13
    assert LossTally([0.5]).variance == math.inf


class _Losses(torch.nn.Module):
    """Two-class logits (label 0) whose cross-entropy for example k is ``losses[k]``; records
    every example it scores and each batch's size."""

    def __init__(self, losses: list[float]):
        super().__init__()
        self.z = torch.tensor([math.log(math.expm1(loss)) for loss in losses])
        self.seen, self.batches = [], []

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        rows = (input_ids[:, 0] - 1).tolist()
        self.seen += rows
        self.batches.append(len(rows))
        logits = torch.zeros(len(rows), 2)
        logits[:, 1] = self.z[rows]
        return SimpleNamespace(logits=logits)


def _split(n: int = N) -> TokenizedSplit:
    return TokenizedSplit([[i + 1] * (1 + i % 9) for i in range(n)], None, [0] * n)


def _by_position(split: TokenizedSplit, loss_at) -> list[float]:
    """Per-example losses given by each example's position in the rung order."""
    order = [i for c in rung_chunks(split.lengths, rung_chunk_size(128), CONFIG.seed) for i in c]
    losses = [0.0] * len(split)
    for position, index in enumerate(order):
        losses[index] = loss_at(position)
    return losses


def _chunk_by_chunk(split: TokenizedSplit, losses: list[float]):
    """The reference: the rule read after every chunk, scoring nothing ahead."""
    tally, scored = LossTally(), []
    for chunk in rung_chunks(split.lengths, rung_chunk_size(128), CONFIG.seed):
        tally.add(losses[i] for i in chunk)
        scored += chunk
        if not needs_more_examples(tally):
            break
    guesses = [int(losses[i] > math.log(2)) for i in scored]
    metric = compute_metric("accuracy", [0] * len(scored), guesses)
    return metric, tally.mean, len(scored) if len(scored) < len(split) else None


@pytest.mark.parametrize(
    "loss_at, examples, scored",
    [
        (lambda p: 0.7, 128, 128),  # near chance: the minimum, nothing scored ahead
        # spread in the first 128 (std 0.6: ~900 needed), constant after: the rule stops at
        # 384 (n (n - 1) >= 0.36 * 127 / 0.02^2); the 13 chunks scored ahead go up to 960
        (lambda p: (0.1, 1.3)[p % 2] if p < 128 else 0.7, 384, 960),
        # a calmer start (std 0.3: 227 needed) and a wider spread after (std 0.5): three
        # passes, to 256, 448 and 576, where the rule stops; nothing scored past it
        (lambda p: (0.4, 1.0)[p % 2] if p < 128 else (0.2, 1.2)[p % 2], 576, 576),
        (lambda p: (0.05, 3.0)[p % 2], None, N),  # too spread for dev: all of it, once
    ],
)
def test_a_rung_stops_where_the_chunk_by_chunk_rule_stops(loss_at, examples, scored):
    split = _split()
    losses = _by_position(split, loss_at)
    model = _Losses(losses)
    metric, loss, counted = evaluate_subsample(model, split, "accuracy", CONFIG, 0, CPU)
    ref_metric, ref_loss, ref_counted = _chunk_by_chunk(split, losses)
    assert counted == ref_counted == examples
    assert metric == ref_metric and loss == pytest.approx(ref_loss, abs=1e-6)
    assert len(model.seen) == len(set(model.seen)) == scored  # no example scored twice
    assert max(model.batches) <= 32  # CPU dev batches


def test_cpu_dev_batches_hold_at_most_32_and_test_keeps_the_eval_batch_size():
    split = _split(300)
    losses = [0.1 + (i % 7) / 10 for i in range(300)]
    model = _Losses(losses)
    metric, loss, examples = trainer.evaluate_dev(model, split, "accuracy", CONFIG, 5, 0, CPU)
    assert sorted(model.seen) == list(range(300)) and max(model.batches) == 32
    assert examples is None and loss == pytest.approx(sum(losses) / 300, abs=1e-6)
    model = _Losses(losses)  # test: predict's batches (lorasearch.load), so its metric matches
    assert evaluate(model, split, "accuracy", CONFIG, 0, CPU) == metric
    assert model.batches == [128, 128, 44] and sorted(model.seen) == list(range(300))
    model = _Losses(losses)
    trainer.evaluate_dev(model, split, "accuracy", TrainConfig(eval_batch_size=16), 5, 0, CPU)
    assert max(model.batches) == 16 and len(model.seen) == 300
    assert trainer._dev_batch_size(CONFIG, torch.device("cuda")) == 128  # accelerators: as set


def test_a_search_scores_no_dev_point_twice_and_a_front_trial_s_test_once(
    toy_data, tiny_bert, tmp_path, monkeypatch
):
    runs = []  # per train() call: dev steps scored, test scorings, its result
    real_train, real_dev, real_eval = trial_module.train, trainer.evaluate_dev, trainer.evaluate

    def train(loaded, adapter, task, data, config, **kwargs):
        runs.append({"dev": [], "test": 0, "split": data["test"]})
        runs[-1]["result"] = real_train(loaded, adapter, task, data, config, **kwargs)
        return runs[-1]["result"]

    def evaluate_dev(model, split, metric, config, step, *args, **kwargs):
        runs[-1]["dev"].append(step)
        return real_dev(model, split, metric, config, step, *args, **kwargs)

    def counting_evaluate(model, split, *args, **kwargs):
        runs[-1]["test"] += split is runs[-1]["split"]
        return real_eval(model, split, *args, **kwargs)

    monkeypatch.setattr(trial_module, "train", train)
    monkeypatch.setattr(trainer, "evaluate_dev", evaluate_dev)
    monkeypatch.setattr(trainer, "evaluate", counting_evaluate)
    fixed = toy_fixed(toy_data, tiny_bert, steps=27)
    search = SearchConfig(
        trials=6, space=SearchSpace.default(["lora"]), storage=f"sqlite:///{tmp_path / 's.db'}",
        study_name="cost", min_steps=3, eta=3, early_stop=False,
    )  # fmt: skip
    study = run_search(fixed, search)
    continued = [r for r in runs if r["result"].resumed_from]
    assert continued  # promotions resumed from their rung checkpoints
    for run in runs:
        result = run["result"]
        assert run["dev"] == sorted(set(run["dev"]))  # no step scored twice
        assert all(step > result.resumed_from for step in run["dev"])  # none re-scored on resume
        assert run["test"] == (result.test_metric is not None)  # once, and only when kept
    kept = [t for t in trial_records(study) if t.test_metric is not None]
    assert kept and sum(run["test"] for run in runs) == len(kept)

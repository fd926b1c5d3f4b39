"""Rung evaluation on a dev subsample: sized by its noise, in a fixed order, never best-on-dev."""

import math
from types import SimpleNamespace

import pytest
import torch
from conftest import toy_rows, write_tsv

from lorasearch.adapters import build_adapter
from lorasearch.training import trainer
from lorasearch.training.data import TokenizedSplit
from lorasearch.training.evaluation import (
    RUNG_MIN_EXAMPLES,
    RUNG_SE_NATS,
    LossTally,
    needs_more_examples,
    rung_chunks,
)
from lorasearch.training.trainer import TrainConfig, evaluate_subsample
from lorasearch.training.trial import DataConfig, ModelConfig, Trial, run_trial

CPU = torch.device("cpu")


def test_a_near_constant_loss_stops_at_the_minimum_a_spread_one_does_not():
    near_chance = [math.log(2) + 0.01 * ((i % 3) - 1) for i in range(RUNG_MIN_EXAMPLES)]
    assert needs_more_examples(LossTally(near_chance[:-1]))  # one short of the minimum
    assert not needs_more_examples(LossTally(near_chance))
    spread = [0.02, 3.0] * 500  # std 1.5 nats: a standard error of 0.02 needs ~5,600
    tally = LossTally(spread)
    assert needs_more_examples(tally) and tally.standard_error > RUNG_SE_NATS
    assert tally.mean == pytest.approx(1.51) and tally.standard_error == pytest.approx(
        1.49 / math.sqrt(1_000), rel=1e-3
    )
    assert LossTally([0.7]).standard_error == math.inf


def test_rung_order_is_seeded_covers_every_example_once_and_sorts_each_chunk():
    lengths = [(7 * i) % 13 + 1 for i in range(300)]
    chunks = rung_chunks(lengths, 128, seed=3)
    assert [len(c) for c in chunks] == [128, 128, 44]
    assert sorted(i for c in chunks for i in c) == list(range(300))
    assert all([lengths[i] for i in c] == sorted(lengths[i] for i in c) for c in chunks)
    assert chunks == rung_chunks(lengths, 128, seed=3)  # every trial of a seed: same examples
    assert set(chunks[0]) != set(rung_chunks(lengths, 128, seed=4)[0])
    state = torch.get_rng_state()
    rung_chunks(lengths, 128, seed=5)
    assert torch.equal(state, torch.get_rng_state())  # training's RNG (dropout) is untouched


class _Scorer(torch.nn.Module):
    """Two-class logits from the first token: zeros (every loss ln 2) or spread out."""

    def __init__(self, spread: bool):
        super().__init__()
        self.spread = spread

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        scale = ((input_ids[:, 0] % 7) - 3).float() * 2.0 if self.spread else 0.0
        logits = torch.zeros(len(input_ids), 2)
        logits[:, 1] = scale
        return SimpleNamespace(logits=logits)


def _split(n: int) -> TokenizedSplit:
    return TokenizedSplit(
        [[i + 1] * (1 + i % 5) for i in range(n)], None, [i % 2 for i in range(n)]
    )


def test_subsample_stops_early_for_a_near_constant_model_and_scores_all_for_a_noisy_one():
    split, config = _split(1000), TrainConfig(eval_batch_size=100, seed=1)
    metric, loss, examples = evaluate_subsample(_Scorer(False), split, "accuracy", config, 0, CPU)
    assert examples == 150  # chunks of 50 (half the eval batch) until at least 128
    assert loss == pytest.approx(math.log(2))
    metric, loss, examples = evaluate_subsample(_Scorer(True), split, "accuracy", config, 0, CPU)
    assert examples is None  # all of dev: the losses spread too much to stop
    full_metric, full_loss = trainer.evaluate(
        _Scorer(True), split, "accuracy", config, 0, CPU, with_loss=True
    )
    assert metric == full_metric and loss == pytest.approx(full_loss)


def test_subsamples_only_at_rungs_below_the_regular_evaluations():
    config = TrainConfig(steps=60, eval_every=20, eval_steps=(2, 20, 40, 60))
    assert [s for s in range(1, 61) if config.subsamples_at(s)] == [2]
    off = TrainConfig(steps=60, eval_every=20, eval_steps=(2,), rung_subsample=False)
    assert not off.subsamples_at(2) and off.evaluates_at(2)


@pytest.fixture(scope="module")
def big_dev(tmp_path_factory):
    """The toy task with a dev split of 1,000: more than a near-chance rung needs."""
    folder = tmp_path_factory.mktemp("toy-big-dev")
    write_tsv(folder / "train.tsv", toy_rows(600, 0))
    write_tsv(folder / "dev.tsv", toy_rows(1000, 1))
    write_tsv(folder / "test.tsv", toy_rows(120, 2))
    return folder


def _trial(data, tiny_bert, **train):
    return Trial(
        data=DataConfig(data=str(data), text_column="sentence"),
        model=ModelConfig(model=str(tiny_bert)),
        adapter=build_adapter("lora", rank=4, lr=5e-3),
        train=TrainConfig(**(dict(steps=40, batch_size=16, max_length=24, eval_every=20) | train)),
    )


def test_a_search_like_run_subsamples_its_early_rung_only(big_dev, tiny_bert):
    result = run_trial(_trial(big_dev, tiny_bert, eval_steps=(2, 20)))
    assert [p.step for p in result.curve] == [2, 20, 40]
    rung, *regular = result.curve
    assert rung.dev_examples == RUNG_MIN_EXAMPLES  # near chance: the minimum (two chunks of 64)
    assert [p.dev_examples for p in regular] == [None, None]
    assert result.to_json()["curve"][0]["dev_examples"] == rung.dev_examples
    off = run_trial(_trial(big_dev, tiny_bert, eval_steps=(2, 20), rung_subsample=False))
    assert [p.dev_examples for p in off.curve] == [None, None, None]


def test_best_on_dev_never_picks_a_subsampled_point(big_dev, tiny_bert, monkeypatch):
    def flattering(*args, **kwargs):  # a subsample that looks better than any full evaluation
        return 1.0, 0.01, 256

    monkeypatch.setattr(trainer, "evaluate_subsample", flattering)
    result = run_trial(_trial(big_dev, tiny_bert, eval_steps=(10, 30)))
    assert [(p.step, p.dev_examples) for p in result.curve] == [
        (10, 256), (20, None), (30, 256), (40, None)
    ]  # fmt: skip
    assert result.best_step in (20, 40) and result.dev_metric < 1.0

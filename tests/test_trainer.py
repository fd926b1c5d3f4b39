"""The training loop: learns, is reproducible, keeps the best-on-dev weights, stops when told."""

import json

import pytest
import torch

from lorasearch.adapters import build_adapter
from lorasearch.adapters.lora import LoraAdapter
from lorasearch.training import trainer
from lorasearch.training.metrics import chance_level
from lorasearch.training.trainer import NonFiniteLoss, TrainConfig
from lorasearch.training.trial import DataConfig, ModelConfig, Trial, load_data, run_trial

FAST = dict(steps=60, batch_size=16, max_length=24, eval_every=20)


def _trial(toy_data, tiny_bert, adapter=None, **train):
    return Trial(
        data=DataConfig(data=str(toy_data), text_column="sentence"),
        model=ModelConfig(model=str(tiny_bert)),
        adapter=adapter or build_adapter("lora", rank=4, lr=5e-3),
        train=TrainConfig(**(FAST | train)),
    )


def test_learns_well_above_chance(toy_data, tiny_bert):
    result = run_trial(_trial(toy_data, tiny_bert, steps=150, eval_every=50))
    task = load_data(DataConfig(data=str(toy_data), text_column="sentence"))
    chance = chance_level("accuracy", task.test.labels, task.num_labels)
    assert result.test_metric >= chance + 0.25, (result.test_metric, chance)
    assert [p.step for p in result.curve] == [50, 100, 150]
    assert result.curve[-1].train_loss < result.curve[0].train_loss
    assert result.dev_metric == max(p.dev_metric for p in result.curve)
    assert result.label_names == ["neg", "pos"]
    assert result.steps == 150 and result.steps_per_second > 0 and result.peak_memory_mb > 0


def test_same_seed_same_numbers_other_seed_differs(toy_data, tiny_bert):
    a = run_trial(_trial(toy_data, tiny_bert, seed=3))
    b = run_trial(_trial(toy_data, tiny_bert, seed=3))
    c = run_trial(_trial(toy_data, tiny_bert, seed=4))
    assert abs(a.test_metric - b.test_metric) <= 1e-6 and abs(a.dev_metric - b.dev_metric) <= 1e-6
    assert [p.train_loss for p in a.curve] == [p.train_loss for p in b.curve]
    assert [p.train_loss for p in a.curve] != [p.train_loss for p in c.curve]


def test_best_on_dev_weights_are_the_ones_exported(toy_data, tiny_bert, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from lorasearch.training.data import tokenize_task
    from lorasearch.training.models import load_model
    from lorasearch.training.trainer import evaluate, resolve_device

    trial = _trial(toy_data, tiny_bert, steps=80, eval_every=10)
    result = run_trial(trial, export_dir=tmp_path)
    meta = json.loads((tmp_path / "lorasearch.json").read_text())
    assert meta["label_names"] == ["neg", "pos"] and meta["variant"] == "lora"

    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    model = PeftModel.from_pretrained(base, tmp_path)
    loaded = load_model(str(tiny_bert), ["neg", "pos"])
    task = load_data(trial.data)
    data = tokenize_task(task, loaded.tokenizer, trial.train.max_length)
    device = resolve_device("cpu")
    dev = evaluate(model, data["dev"], "accuracy", trial.train, 0, device)
    test = evaluate(model, data["test"], "accuracy", trial.train, 0, device)
    assert dev == pytest.approx(result.dev_metric, abs=1e-9)
    assert test == pytest.approx(result.test_metric, abs=1e-9)


def test_on_eval_can_stop_the_run(toy_data, tiny_bert):
    seen = []

    def stop_at_40(point):
        seen.append(point)
        return "trails the front" if point.step == 40 else None

    result = run_trial(_trial(toy_data, tiny_bert), on_eval=stop_at_40)
    assert [p.step for p in seen] == [20, 40] and result.steps == 40
    assert seen == result.curve and all(p.dev_loss > 0 for p in seen)
    assert result.stopped_early == "trails the front"


def test_extra_eval_steps_and_dev_loss_is_the_mean_cross_entropy(toy_data, tiny_bert):
    result = run_trial(_trial(toy_data, tiny_bert, eval_steps=(33, 7, 20)))
    assert [p.step for p in result.curve] == [7, 20, 33, 40, 60]
    assert all(0 < p.dev_loss < 5 for p in result.curve)
    assert result.curve[-1].dev_loss < result.curve[0].dev_loss  # it learns
    assert [p["dev_loss"] for p in result.to_json()["curve"]] == [p.dev_loss for p in result.curve]


def test_test_split_skipped_when_declined_after_training(toy_data, tiny_bert, monkeypatch):
    seen, scored_splits = [], []
    evaluate = trainer.evaluate

    def counting(model, split, *args, **kwargs):
        scored_splits.append(len(split))
        return evaluate(model, split, *args, **kwargs)

    monkeypatch.setattr(trainer, "evaluate", counting)

    def decline(result):
        seen.append((result.test_metric, result.steps))
        return False

    trial = _trial(toy_data, tiny_bert)
    skipped = run_trial(trial, score_test=decline)
    assert len(scored_splits) == 3  # dev at 20, 40, 60; no test
    scored = run_trial(trial)
    assert len(scored_splits) == 3 + 4  # dev three times, then test
    assert seen == [(None, trial.train.steps)] and skipped.test_metric is None
    assert scored.test_metric is not None and skipped.dev_metric == scored.dev_metric


class _Diverging(LoraAdapter):
    def after_step(self, model, step):
        if step == 3:
            with torch.no_grad():
                next(p for p in model.parameters() if p.requires_grad).fill_(float("nan"))


def test_non_finite_loss_stops_at_once(toy_data, tiny_bert):
    adapter = _Diverging(LoraAdapter.config_class(rank=2))
    with pytest.raises(NonFiniteLoss, match="non-finite loss .* at step 4"):
        run_trial(_trial(toy_data, tiny_bert, adapter=adapter))


def test_schedule_warms_up_then_decays(tiny_bert):
    from lorasearch.adapters import InjectContext
    from lorasearch.training.models import load_model
    from lorasearch.training.trainer import Stepper

    loaded = load_model(str(tiny_bert), ["neg", "pos"])
    adapter = build_adapter("lora", rank=2, lr=1e-3)
    context = InjectContext(loaded.head_modules, loaded.target_modules, seed=0)
    model = adapter.inject(loaded.model, context)
    stepper = Stepper(model, adapter, TrainConfig(warmup_ratio=0.2), 50, torch.device("cpu"))
    batch = {"input_ids": torch.randint(1000, 2000, (4, 6)), "labels": torch.tensor([0, 1, 0, 1])}
    lrs = []
    for step in range(1, 51):
        lrs.append(stepper.optimizer.param_groups[0]["lr"])
        stepper.step(batch, step)
    assert lrs[0] == 0.0 and max(lrs) == pytest.approx(1e-3) and lrs.index(max(lrs)) == 10
    assert lrs[:11] == sorted(lrs[:11]) and lrs[10:] == sorted(lrs[10:], reverse=True)
    assert stepper.optimizer.param_groups[0]["lr"] == 0.0  # decayed to zero at the last step


def test_fast_dropout_is_dropout_with_a_cheaper_mask():
    from torch import nn

    from lorasearch.training.dropout import FastDropout, use_fast_dropout

    p, x = 0.3, torch.randn(400, 500, requires_grad=True)
    drop = FastDropout(p)
    torch.manual_seed(0)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005  # Bernoulli(1 - p), 200k draws
    lanes = kept.flatten().view(-1, 4).float()  # four elements share one 64-bit draw
    assert all(abs(rate - (1 - p)) < 0.01 for rate in lanes.mean(0).tolist())  # each lane alike
    corr = torch.corrcoef(lanes.T)  # and independent of its neighbours
    assert (corr - torch.eye(4)).abs().max() < 0.02
    assert torch.allclose(y[kept], x[kept] / (1 - p))  # survivors scaled as nn.Dropout does
    y.sum().backward()
    assert torch.allclose(x.grad, kept / (1 - p))  # the gradient is the same mask
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # seeded like everything else
    drop.eval()
    assert drop(x) is x

    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.1), nn.ModuleDict({"a": nn.Dropout(0.2)}))
    assert use_fast_dropout(model) == 2
    assert [type(m) for m in model.modules()].count(nn.Dropout) == 0
    assert model[2]["a"].p == 0.2


def test_fast_dropout_trains_like_native_dropout(toy_data, tiny_bert):
    """Only the mask's random stream differs: the learned result is as good."""
    fast = run_trial(_trial(toy_data, tiny_bert, steps=150, eval_every=50))
    native = run_trial(_trial(toy_data, tiny_bert, steps=150, eval_every=50, fast_dropout=False))
    assert abs(fast.test_metric - native.test_metric) <= 0.05, (
        fast.test_metric,
        native.test_metric,
    )
    assert fast.trainable_params == native.trainable_params

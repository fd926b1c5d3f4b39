"""Dev and test are scored on batches padded on the tokenizer's side, as training pads them.

GPT-2 numbers positions 0, 1, … from the left edge of the batch (it derives no position ids from
the attention mask), so with a tokenizer that pads left an example's logits depend on the side
it is padded on: scored on right-padded batches, a model trained on left-padded ones is measured
on other inputs than it learned on and than ``tokenizer(texts, padding=True)`` gives it at
inference. (A rotary model, LLaMA, sees only relative positions and gives the same logits on
either side, so GPT-2 is the witness here.)
"""

import shutil

import pytest
import torch

from lorasearch.adapters import build_adapter
from lorasearch.training.data import TokenizedSplit, eval_batches, tokenize_task
from lorasearch.training.metrics import compute_metric
from lorasearch.training.models import load_model
from lorasearch.training.trainer import TrainConfig, evaluate
from lorasearch.training.trial import DataConfig, ModelConfig, Trial, load_data, run_trial

CPU = torch.device("cpu")
TRAIN = TrainConfig(steps=10, batch_size=16, max_length=24, eval_every=5, eval_batch_size=32)


@pytest.fixture(scope="module")
def left_gpt2(tiny_models, tmp_path_factory):
    """The tiny GPT-2 with a tokenizer that pads on the left."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("gpt2_left")
    shutil.copytree(tiny_models["gpt2"], folder, dirs_exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(folder)
    return folder


def _splits(toy_data, loaded) -> dict[str, TokenizedSplit]:
    task = load_data(DataConfig(data=str(toy_data), text_column="sentence"))
    return tokenize_task(task, loaded.tokenizer, TRAIN.max_length)


def tokenizer_predictions(model, tokenizer, split: TokenizedSplit, batch_size: int) -> list[int]:
    """Argmax predictions on the same groups of examples as ``evaluate``, each group padded by
    the tokenizer itself (``tokenizer.pad``, the padding ``tokenizer(..., padding=True)`` does)."""
    predictions = [0] * len(split)
    model.eval()
    for indices in eval_batches(split.lengths, batch_size):
        features = [
            {"input_ids": split.input_ids[i]}
            | ({"token_type_ids": split.token_type_ids[i]} if split.token_type_ids else {})
            for i in indices
        ]
        batch = tokenizer.pad(features, return_tensors="pt")
        with torch.inference_mode():
            chosen = model(**batch).logits.argmax(dim=-1).tolist()
        for i, label in zip(indices, chosen, strict=True):
            predictions[i] = label
    return predictions


def _relabelled(split: TokenizedSplit, labels: list[int]) -> TokenizedSplit:
    return TokenizedSplit(split.input_ids, split.token_type_ids, labels)


def test_evaluate_pads_on_the_given_side_as_the_tokenizer_does(toy_data, left_gpt2):
    loaded = load_model(str(left_gpt2), ["neg", "pos"], seed=0)
    assert loaded.tokenizer.padding_side == "left"
    dev = _splits(toy_data, loaded)["dev"]
    expected = tokenizer_predictions(loaded.model, loaded.tokenizer, dev, TRAIN.eval_batch_size)
    # The split labelled with the tokenizer-padded predictions: accuracy 1 means every prediction
    # of evaluate's is the tokenizer-padded one.
    oracle = _relabelled(dev, expected)
    assert evaluate(loaded.model, oracle, "accuracy", TRAIN, 0, CPU, pad_left=True) == 1.0
    # The side matters for this model (what the old, always-right-padded evaluate scored).
    assert evaluate(loaded.model, oracle, "accuracy", TRAIN, 0, CPU) < 0.9


def test_training_scores_dev_and_test_padded_like_its_batches(
    toy_data, left_gpt2, tmp_path, monkeypatch
):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from lorasearch.training import trainer

    scored = []  # the predictions behind each metric the run computes; the last is test's
    monkeypatch.setattr(
        trainer,
        "compute_metric",
        lambda metric, labels, predictions: (
            scored.append(predictions) or compute_metric(metric, labels, predictions)
        ),
    )
    trial = Trial(
        data=DataConfig(data=str(toy_data), text_column="sentence"),
        model=ModelConfig(model=str(left_gpt2)),
        adapter=build_adapter("lora", rank=2, lr=1e-4),  # near its init: both labels predicted
        train=TRAIN,
    )
    run_trial(trial, export_dir=tmp_path)

    loaded = load_model(str(left_gpt2), ["neg", "pos"], seed=0)
    base = AutoModelForSequenceClassification.from_pretrained(left_gpt2, num_labels=2)
    model = PeftModel.from_pretrained(base, tmp_path)
    test = _splits(toy_data, loaded)["test"]
    assert 0 < sum(scored[-1]) < len(test)  # (one label everywhere would hide the padding side)
    assert scored[-1] == tokenizer_predictions(model, loaded.tokenizer, test, TRAIN.eval_batch_size)

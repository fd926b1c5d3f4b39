"""In-memory inputs: DataFrames, datasets and loaded models become content-addressed folders."""

import csv

import pandas as pd
import pytest
import torch

from lorasearch.errors import LorasearchError
from lorasearch.training.models import load_model
from lorasearch.training.sources import dataset_source, model_source
from lorasearch.training.tasks import load_task, resolve_spec

SPEC = resolve_spec(None, text_column="sentence")


def _frames(toy_data) -> dict[str, pd.DataFrame]:
    return {
        split: pd.read_csv(
            toy_data / f"{split}.tsv", sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False
        )
        for split in ("train", "dev", "test")
    }


def test_dataframes_load_as_the_same_task_as_the_files(toy_data):
    frames = _frames(toy_data)
    folder = dataset_source(frames)
    from_frames = load_task(SPEC, folder)
    from_files = load_task(SPEC, str(toy_data))
    assert from_frames.fingerprint == from_files.fingerprint
    assert from_frames.label_names == ["neg", "pos"]
    assert dataset_source({k: v.copy() for k, v in frames.items()}) == folder  # by content
    frames["dev"].loc[0, "sentence"] += " changed"
    assert dataset_source(frames) != folder


def test_a_datasetdict_with_class_labels_keeps_label_names_and_split_aliases(toy_data):
    import datasets

    frames = _frames(toy_data)
    features = datasets.Features(
        {"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])}
    )
    dataset = datasets.DatasetDict(
        {
            name: datasets.Dataset.from_pandas(frames[split], features=features)
            for name, split in (("train", "train"), ("validation", "dev"), ("test", "test"))
        }
    )
    task = load_task(SPEC, dataset_source(dataset))
    assert task.label_names == ["neg", "pos"]
    assert task.fingerprint == load_task(SPEC, str(toy_data)).fingerprint


def test_a_single_frame_is_train_and_dev_test_are_carved(toy_data):
    task = load_task(SPEC, dataset_source(_frames(toy_data)["train"]))
    assert len(task.dev) == len(task.test) == 60 and len(task.train) == 480
    assert "carved" in task.dev.source


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"train": pd.DataFrame({"a": [1]}), "holdout": pd.DataFrame({"a": [1]})}, "unknown split"),
        ({"dev": pd.DataFrame({"a": [1]})}, "no train split"),
        ([1, 2, 3], "data must be a path"),
    ],
)
def test_bad_data_objects_are_one_clear_error(data, message):
    with pytest.raises(LorasearchError, match=message):
        dataset_source(data)


def test_a_loaded_model_becomes_a_folder_that_loads_the_same_weights(tiny_bert):
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(tiny_bert)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    folder = model_source(model, tokenizer)
    assert model_source(model, tokenizer) == folder
    loaded = load_model(folder, ["neg", "pos"])
    ours = dict(loaded.model.base_model.named_parameters())
    for name, param in model.named_parameters():
        assert torch.equal(ours[name], param)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert model_source(model, tokenizer) != folder
    with pytest.raises(LorasearchError, match="needs its tokenizer"):
        model_source(model, None)
    with pytest.raises(LorasearchError, match="PreTrainedModel"):
        model_source(object(), tokenizer)

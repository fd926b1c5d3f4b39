"""Loading tasks: formats, splits, label mapping, subsampling and the errors users hit."""

import json

import pytest
from conftest import toy_rows, write_tsv

from lorasearch.errors import LorasearchError
from lorasearch.training.tasks import PRESETS, TaskSpec, load_task, resolve_spec

SPEC = TaskSpec(name="toy", text_column="sentence")


def test_folder_with_three_splits_maps_string_labels(toy_data):
    task = load_task(SPEC, str(toy_data))
    assert task.label_names == ["neg", "pos"]  # sorted names become ids 0, 1
    assert (len(task.train), len(task.dev), len(task.test)) == (600, 120, 120)
    assert set(task.train.labels) == {0, 1}
    first_text, first_label = toy_rows(600, 0)[0]
    assert task.train.texts[0] == first_text
    assert task.label_names[task.train.labels[0]] == first_label


def test_preset_label_order_is_kept(tmp_path):
    rows = [("world news", "World"), ("match report", "Sports"), ("stocks", "Business")] * 10
    write_tsv(tmp_path / "train.tsv", rows + [("chips", "Sci/Tech")], header=("text", "label"))
    task = load_task(PRESETS["agnews"], str(tmp_path))
    assert task.label_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert task.train.labels.count(0) + task.dev.labels.count(0) + task.test.labels.count(0) == 10


def test_single_file_carves_seeded_dev_and_test(tmp_path):
    path = write_tsv(tmp_path / "all.tsv", toy_rows(200, 3))
    a = load_task(SPEC, str(path), seed=0)
    b = load_task(SPEC, str(path), seed=0)
    assert (len(a.train), len(a.dev), len(a.test)) == (160, 20, 20)
    assert a.dev.texts == b.dev.texts and a.test.texts == b.test.texts
    assert "carved" in a.dev.source and "carved" in a.test.source
    assert sorted(a.train.texts + a.dev.texts + a.test.texts) == sorted(
        t for t, _ in toy_rows(200, 3)
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "parquet"])
def test_other_formats_and_validation_alias(tmp_path, fmt):
    import pandas as pd

    for split, seed in (("train", 0), ("validation", 1), ("test", 2)):
        frame = pd.DataFrame(toy_rows(40, seed), columns=["sentence", "label"])
        path = tmp_path / f"{split}.{fmt}"
        if fmt == "csv":
            frame.to_csv(path, index=False)
        elif fmt == "parquet":
            frame.to_parquet(path)
        elif fmt == "jsonl":
            frame.to_json(path, orient="records", lines=True)
        else:
            path.write_text(json.dumps(frame.to_dict(orient="records")))
    task = load_task(SPEC, str(tmp_path))
    assert (len(task.train), len(task.dev), len(task.test)) == (40, 40, 40)
    assert task.dev.source == f"validation.{fmt}"


def test_sentence_pairs(tmp_path):
    rows = [(f"a{i}", f"b{i}", i % 2) for i in range(30)]
    write_tsv(tmp_path / "train.tsv", rows, header=("s1", "s2", "label"))
    spec = resolve_spec(None, text_column="s1", text_pair_column="s2", label_column="label")
    task = load_task(spec, str(tmp_path))
    pairs = dict(zip(task.train.texts, task.train.text_pairs, strict=True))
    assert all(pairs[t] == "b" + t[1:] for t in pairs)
    assert task.label_names == ["0", "1"]


def test_subsampling_is_seeded_and_test_stays_whole(toy_data):
    a = load_task(SPEC, str(toy_data), train_samples=50, eval_samples=30)
    b = load_task(SPEC, str(toy_data), train_samples=50, eval_samples=30)
    assert (len(a.train), len(a.dev), len(a.test)) == (50, 30, 120)
    assert a.train.texts == b.train.texts and a.fingerprint == b.fingerprint
    assert a.fingerprint != load_task(SPEC, str(toy_data)).fingerprint


def test_unseen_label_in_test_is_rejected(tmp_path):
    write_tsv(tmp_path / "train.tsv", toy_rows(30, 0))
    write_tsv(tmp_path / "test.tsv", toy_rows(5, 1) + [("meh", "neutral")])
    with pytest.raises(LorasearchError, match="label 'neutral' in the test split never appears"):
        load_task(SPEC, str(tmp_path))


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no train split"),
        (lambda p: write_tsv(p / "train.tsv", []), "empty"),
        (
            lambda p: write_tsv(p / "train.tsv", toy_rows(9, 0), ("text", "label")),
            "text column 'sentence'",
        ),
        (
            lambda p: write_tsv(p / "train.tsv", toy_rows(9, 0), ("sentence", "y")),
            "label column 'label'",
        ),
        (lambda p: write_tsv(p / "train.tsv", [("x", "a")] * 5), "at least 2 distinct labels"),
    ],
)
def test_bad_folders(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(LorasearchError, match=message):
        load_task(SPEC, str(tmp_path))


def test_empty_dev_split_is_rejected(tmp_path):
    write_tsv(tmp_path / "train.tsv", toy_rows(30, 0))
    write_tsv(tmp_path / "dev.tsv", [])
    with pytest.raises(LorasearchError, match="empty"):
        load_task(SPEC, str(tmp_path))


def test_missing_path_and_unknown_task():
    with pytest.raises(LorasearchError, match="data path not found"):
        load_task(SPEC, "./no/such/folder")
    with pytest.raises(LorasearchError, match="unknown task 'sst3'"):
        resolve_spec("sst3")
    with pytest.raises(LorasearchError, match="unknown metric"):
        resolve_spec("sst2", metric="bleu")


@pytest.mark.real
def test_shared_sst2_and_agnews_load(shared_data):
    sst2 = load_task(PRESETS["sst2"], str(shared_data / "sst2"))
    assert (len(sst2.train), len(sst2.dev), len(sst2.test)) == (60614, 6735, 872)
    agnews = load_task(PRESETS["agnews"], str(shared_data / "agnews"))
    assert agnews.label_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert len(agnews.test) == 7600 and len(agnews.dev) == 1000  # carved 10% of 10,001

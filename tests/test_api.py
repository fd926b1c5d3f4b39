"""The Python API: each call on tiny models, with paths and with objects; its results equal the
CLI's JSON for the same run, and its errors are the CLI's messages as LorasearchError."""

import csv
import dataclasses
import json
import subprocess
import sys

import pytest

import lorasearch
from lorasearch import LorasearchError
from lorasearch.cli import main

FAST = {"steps": 8, "batch_size": 8, "max_length": 16, "eval_every": 4}
FAST_ARGS = ["--steps", "8", "--batch-size", "8", "--max-length", "16", "--eval-every", "4"]
# Measured per run, so never equal between two runs.
TIMINGS = {"steps_per_second", "tokens_per_second", "train_time_s", "wall_time_s", "eval_time_s",
           "prepare_time_s", "peak_memory_mb"}  # fmt: skip


def _cli_json(capsys, *args) -> dict:
    code = main([*args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def _cli_error(capsys, *args) -> str:
    assert main(list(args)) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("lorasearch: error: ")
    return line.removeprefix("lorasearch: error: ")


def _measured(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in TIMINGS | {"splits", "export_dir"}}


def test_import_is_cheap():
    code = "import sys, lorasearch; print(sorted({'torch', 'transformers', 'optuna'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- train ------------------------------------------------------------------------------------------


def test_train_with_paths_equals_the_cli(capsys, toy_data, tiny_bert):
    cli = _cli_json(capsys, "train", "--data", str(toy_data), "--text-column", "sentence",
                    "--model", str(tiny_bert), "--rank", "2", *FAST_ARGS)  # fmt: skip
    result = lorasearch.train(
        data=toy_data, model=tiny_bert, text_column="sentence", knobs={"rank": 2}, **FAST
    )
    assert isinstance(result, lorasearch.TrainResult)
    assert _measured(dataclasses.asdict(result)) == _measured(cli)
    assert dataclasses.asdict(result).keys() == cli.keys()


def _frames(toy_data) -> dict:
    import pandas as pd

    return {
        split: pd.read_csv(toy_data / f"{split}.tsv", sep="\t", quoting=csv.QUOTE_NONE)
        for split in ("train", "dev", "test")
    }


def test_train_on_a_dataframe_and_a_loaded_model_equals_the_same_files(toy_data, tiny_bert):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    from_objects = lorasearch.train(
        data=_frames(toy_data), model=model, tokenizer=tokenizer, text_column="sentence", **FAST
    )
    from_paths = lorasearch.train(data=str(toy_data), model=str(tiny_bert),
                                  text_column="sentence", **FAST)  # fmt: skip
    assert _measured(dataclasses.asdict(from_objects)) == _measured(dataclasses.asdict(from_paths))
    assert from_objects.splits["train"]["source"] == "train.parquet"


def test_train_on_a_datasets_dict_with_class_labels(toy_data, tiny_bert):
    import datasets

    names = datasets.ClassLabel(names=["neg", "pos"])
    splits = {
        ("validation" if split == "dev" else split): datasets.Dataset.from_pandas(
            frame
        ).cast_column("label", names)
        for split, frame in _frames(toy_data).items()
    }
    result = lorasearch.train(data=datasets.DatasetDict(splits), model=tiny_bert,
                              text_column="sentence", **FAST)  # fmt: skip
    assert result.label_names == ["neg", "pos"] and result.steps == FAST["steps"]


def test_train_errors_are_the_cli_messages(capsys, toy_data, tiny_bert, tmp_path):
    data = ["--data", str(toy_data), "--text-column", "sentence", "--model", str(tiny_bert)]
    cases = [
        ({"data": str(tmp_path / "none.tsv")}, ["--data", str(tmp_path / "none.tsv")]),
        ({}, []),
        ({"data": toy_data, "text_column": "body"}, data[:2] + ["--text-column", "body"]),
        ({"data": toy_data, "text_column": "sentence", "model": tiny_bert,
          "variant": "lorax"}, data + ["--variant", "lorax"]),
        ({"data": toy_data, "text_column": "sentence", "model": tiny_bert,
          "knobs": {"rank": 0}}, data + ["--rank", "0"]),
        ({"task": ["sst2", "cola"]}, ["--task", "sst2", "--task", "cola"]),
    ]  # fmt: skip
    for kwargs, args in cases:
        with pytest.raises(LorasearchError) as caught:
            lorasearch.train(**kwargs, **FAST)
        assert str(caught.value) == _cli_error(capsys, "train", *args, *FAST_ARGS), kwargs


def test_objects_need_what_goes_with_them(toy_data, tiny_bert):
    from transformers import AutoModelForSequenceClassification

    with pytest.raises(LorasearchError, match="needs its tokenizer"):
        model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
        lorasearch.train(data=toy_data, text_column="sentence", model=model, **FAST)
    with pytest.raises(LorasearchError, match="data must be a path"):
        lorasearch.train(data=42, text_column="sentence", model=tiny_bert, **FAST)
    with pytest.raises(TypeError, match="unexpected keyword argument 'text_colum'"):
        lorasearch.train(data=toy_data, text_colum="sentence", **FAST)


def test_export_then_load_predicts_what_was_measured(toy_data, tiny_bert, tmp_path):
    target = tmp_path / "adapter"
    result = lorasearch.train(data=toy_data, model=tiny_bert, text_column="sentence",
                              variant="dora", export_dir=target, **FAST)  # fmt: skip
    loaded = lorasearch.load(target)
    assert loaded.label_names == ["neg", "pos"] and loaded.max_length == FAST["max_length"]
    test = _frames(toy_data)["test"]
    predicted = loaded.predict(list(test["sentence"]))
    accuracy = sum(p == g for p, g in zip(predicted, test["label"], strict=True)) / len(test)
    assert accuracy == pytest.approx(result.test_metric, abs=1e-9)
    with pytest.raises(LorasearchError, match="not a lorasearch export"):
        lorasearch.load(tmp_path)
    with pytest.raises(LorasearchError, match="not empty"):
        lorasearch.train(data=toy_data, model=tiny_bert, text_column="sentence",
                         export_dir=target, **FAST)  # fmt: skip


# --- the search -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study(toy_data, tiny_bert, tmp_path_factory):
    """Three trials searched through the API, tracking off: (name, storage, report)."""
    storage = f"sqlite:///{tmp_path_factory.mktemp('api') / 'study.db'}"
    report = lorasearch.optimize(
        data=toy_data, model=tiny_bert, text_column="sentence", trials=3, variants="lora,vera",
        storage=storage, study_name="api", tracking=False, **FAST,
    )  # fmt: skip
    return "api", storage, report


def test_optimize_and_report_equal_the_cli(study, capsys):
    name, storage, report = study
    assert isinstance(report, lorasearch.SearchReport) and len(report.trials) == 3
    assert report.front == [t for t in report.trials if t.number in report.pareto]
    cli = _cli_json(capsys, "pareto", "--study", name, "--storage", storage)
    assert report.to_json() == cli and report.refit is None  # never refit: no "refit" key
    assert lorasearch.report(name, storage).to_json() == cli


def test_pick_equals_the_cli_and_exports(study, capsys, tmp_path):
    name, storage, report = study
    cli = _cli_json(capsys, "best", "--study", name, "--storage", storage, "--max-params", "10000")
    chosen = lorasearch.pick(name, storage, max_params=10_000)
    assert dataclasses.asdict(chosen) == cli
    best = max(report.front, key=lambda t: (t.values[0], -t.values[1]))
    exported = lorasearch.pick(name, storage, export_dir=tmp_path / "out")
    assert exported.trial == best.number and exported.export_dir == str(tmp_path / "out")
    assert exported.export_source.startswith("retrained")  # tracking was off: nothing stored
    assert exported.test_metric_retrained == pytest.approx(exported.test_metric)
    assert (tmp_path / "out" / "README.md").is_file()
    assert lorasearch.load(tmp_path / "out").label_names == ["neg", "pos"]


def test_refit_equals_the_cli(study, capsys):
    name, storage, _ = study
    cli = _cli_json(capsys, "refit", "--study", name, "--storage", storage, "--seeds", "1")
    result = lorasearch.refit(name, storage, seeds=1)
    assert dataclasses.asdict(result) == cli
    assert all(r.dev_mean == pytest.approx(r.search_dev_metric) for r in result.refits)


def test_optimize_joins_a_study_as_a_worker_does(study, toy_data):
    name, storage, report = study
    joined = lorasearch.optimize(study_name=name, storage=storage, trials=1, device="cpu",
                                 tracking=False)  # fmt: skip
    assert len(joined.trials) == len(report.trials) + 1
    with pytest.raises(LorasearchError, match="come from the study"):
        lorasearch.optimize(study_name=name, storage=storage, trials=1, sampler="random")


def test_study_errors_are_the_cli_messages(study, capsys, toy_data, tmp_path):
    name, storage, _ = study
    cases = [
        (lambda: lorasearch.report("ghost", storage), ["pareto", "--study", "ghost",
                                                       "--storage", storage]),
        (lambda: lorasearch.pick(name, storage, max_params=1), ["best", "--study", name,
                                                              "--storage", storage,
                                                              "--max-params", "1"]),
        (lambda: lorasearch.pick(name, storage, register=True, tracking_uri="nonsense"),
         ["best", "--study", name, "--storage", storage, "--register", "--tracking-uri",
          "nonsense"]),
        (lambda: lorasearch.pick(name, storage, register=True), ["best", "--study", name,
                                                                "--storage", storage,
                                                                "--register"]),
        (lambda: lorasearch.refit(name, storage, seeds=0), ["refit", "--study", name,
                                                           "--storage", storage, "--seeds", "0"]),
        (lambda: lorasearch.optimize(data=toy_data, text_column="sentence", trials=0,
                                     storage=storage), ["search", "--data", str(toy_data),
                                                        "--text-column", "sentence", "--trials",
                                                        "0", "--storage", storage]),
        (lambda: lorasearch.optimize(data=toy_data, trials=1, sampler="cmaes"),
         ["search", "--data", str(toy_data), "--trials", "1", "--sampler", "cmaes"]),
        (lambda: lorasearch.optimize(data=toy_data, trials=1, tracking_uri="nonsense"),
         ["search", "--data", str(toy_data), "--trials", "1", "--tracking-uri", "nonsense"]),
        (lambda: lorasearch.optimize(data=toy_data), ["search", "--data", str(toy_data)]),
    ]  # fmt: skip
    for call, args in cases:
        with pytest.raises(LorasearchError) as caught:
            call()
        assert str(caught.value) == _cli_error(capsys, *args), args

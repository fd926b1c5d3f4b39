"""``lorasearch best --register``: the registered version is an MLflow model that
``mlflow.pyfunc.load_model("models:/lorasearch-<study>@best")`` loads and that predicts exactly
what ``lorasearch.predict`` predicts with the export, from a DataFrame of the export's columns."""

import csv
import json
import os

import mlflow
import pandas as pd
import pytest
from conftest import toy_rows, write_tsv
from mlflow.tracking import MlflowClient
from test_tracking import STEPS, _fixed, _search

import lorasearch
from lorasearch.cli import main
from lorasearch.errors import LorasearchError
from lorasearch.search.config import Fixed
from lorasearch.tracking import MlflowTracking
from lorasearch.tracking.pyfunc import NEUTRAL
from lorasearch.training.trainer import TrainConfig
from lorasearch.training.trial import DataConfig, ModelConfig


def _best(capsys, folder, uri, name, *extra) -> dict:
    """``lorasearch best --register --json`` on the study ``name`` kept in ``folder``."""
    storage = f"sqlite:///{folder / 'study.db'}"
    args = ["best", "--study", name, "--storage", storage, "--tracking-uri", uri, "--register"]
    code = main([*args, *map(str, extra), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def delta_study(tiny_bert, toy_data, tmp_path_factory):
    """A two-trial Delta-LoRA search (the variant PEFT alone cannot load), tracked in its own
    store: (folder, tracking URI, study name)."""
    folder = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    fixed = _fixed(toy_data, tiny_bert)
    _search(fixed, folder, 2, name="reg", tracking_uri=uri, variants=["delta_lora"])
    return folder, uri, "reg"


@pytest.fixture
def registry(monkeypatch):
    """Point MLflow's global URIs (environment only, nothing set in-process) at a store."""

    def use(uri: str) -> MlflowClient:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
        return MlflowClient(uri)

    return use


def _texts(path, column="sentence") -> list[str]:
    with open(path, newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row[column] for row in rows]


def test_registered_model_loads_with_mlflow_and_predicts_what_the_export_does(
    delta_study, toy_data, tmp_path, capsys, registry
):
    folder, uri, name = delta_study
    uris = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    before = (mlflow.tracking._tracking_service.utils._tracking_uri, [os.getenv(k) for k in uris])
    out = _best(capsys, folder, uri, name, "--export", tmp_path / "best")
    # Registering set no global tracking URI, environment variable or active run.
    after = (mlflow.tracking._tracking_service.utils._tracking_uri, [os.getenv(k) for k in uris])
    assert after == before
    assert mlflow.active_run() is None
    assert out["registered_model"] == f"lorasearch-{name}" and out["registered_version"] == "1"
    assert out["variant"] == "delta_lora"

    client = registry(uri)
    model = mlflow.pyfunc.load_model(f"models:/lorasearch-{name}@best")
    test = pd.read_csv(toy_data / "test.tsv", sep="\t", quoting=csv.QUOTE_NONE, dtype=str)
    expected = lorasearch.predict(tmp_path / "best", list(test["sentence"]))
    predicted = model.predict(test)  # the label column is extra: MLflow drops it
    assert list(predicted.columns) == ["prediction"]
    assert list(predicted["prediction"]) == expected
    assert sum(p == y for p, y in zip(expected, test["label"], strict=True)) / len(test) == (
        pytest.approx(out["test_metric"], abs=1e-9)
    )

    # Probabilities on request, in the label order, agreeing with the prediction.
    scored = model.predict(test[["sentence"]], params={"probabilities": True})
    assert list(scored.columns) == ["prediction", "probability_neg", "probability_pos"]
    direct = lorasearch.predict(tmp_path / "best", list(test["sentence"]), probabilities=True)
    assert scored.to_dict("records") == pytest.approx(direct)

    # The wrapper itself takes a list of strings or any one-column frame for a one-text task.
    wrapper = model.unwrap_python_model()
    assert list(wrapper.predict(None, list(test["sentence"]))["prediction"]) == expected
    renamed = test[["sentence"]].rename(columns={"sentence": "review"})
    assert list(wrapper.predict(None, renamed)["prediction"]) == expected
    with pytest.raises(LorasearchError, match="no 'sentence' column"):
        wrapper.predict(None, test.rename(columns={"sentence": "review"}))

    # The signature names the text column; the input example is real rows of the task's data.
    schema = model.metadata.get_input_schema()
    assert schema.input_names() == ["sentence"] and schema.input_types()[0].name == "string"
    assert model.metadata.get_output_schema().input_names() == ["prediction"]
    example = model.input_example
    assert list(example.columns) == ["sentence"] and len(example) == 3
    assert set(example["sentence"]) <= set(_texts(toy_data / "dev.tsv") + list(test["sentence"]))

    # The version comes from the trial's run, which still keeps the raw folder for exports.
    version = client.get_model_version_by_alias(f"lorasearch-{name}", "best")
    assert version.run_id == out["mlflow_run_id"] and version.source.startswith("models:/")
    assert {f.path for f in client.list_artifacts(version.run_id, "adapter")} >= {
        "adapter/lorasearch.json",
        "adapter/delta_weights.safetensors",
    }
    logged = client.get_logged_model(version.source.removeprefix("models:/"))
    assert logged.source_run_id == version.run_id and logged.params["variant"] == "delta_lora"
    requirements = mlflow.pyfunc.get_model_dependencies(f"models:/lorasearch-{name}@best")
    pins = open(requirements).read().split()
    assert {p.split("==")[0] for p in pins} == {"lorasearch", "torch", "transformers", "peft",
                                                 "mlflow"}  # fmt: skip


def test_registering_again_makes_version_2_and_moves_the_alias(delta_study, capsys, registry):
    folder, uri, name = delta_study
    client = registry(uri)
    first = _best(capsys, folder, uri, name)["registered_version"]
    second = _best(capsys, folder, uri, name)["registered_version"]
    assert int(second) == int(first) + 1
    assert str(client.get_model_version_by_alias(f"lorasearch-{name}", "best").version) == second
    versions = client.search_model_versions(f"name = 'lorasearch-{name}'")
    assert sorted(int(v.version) for v in versions) == list(range(1, int(second) + 1))
    texts = ["good great fine film", "bad awful dull plot"]
    latest = mlflow.pyfunc.load_model(f"models:/lorasearch-{name}/{second}")
    earlier = mlflow.pyfunc.load_model(f"models:/lorasearch-{name}/{first}")
    frame = pd.DataFrame({"sentence": texts})
    assert latest.predict(frame).equals(earlier.predict(frame))


def test_pair_task_model_takes_both_columns(tiny_bert, tmp_path, capsys, registry):
    data = tmp_path / "pairs"
    data.mkdir()
    for split, n, seed in (("train", 200, 0), ("dev", 40, 1), ("test", 40, 2)):
        pairs = zip(toy_rows(n, seed), toy_rows(n, 9), strict=True)
        rows = [(a, b, label) for (a, label), (b, _) in pairs]
        write_tsv(data / f"{split}.tsv", rows, header=("first", "second", "label"))
    fixed = Fixed(
        DataConfig(data=str(data), text_column="first", text_pair_column="second"),
        ModelConfig(model=str(tiny_bert)),
        TrainConfig(steps=STEPS, batch_size=16, max_length=24, eval_every=10),
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _search(fixed, tmp_path, 1, name="pairs", tracking_uri=uri, variants=["lora"])
    _best(capsys, tmp_path, uri, "pairs", "--export", tmp_path / "best")

    registry(uri)
    model = mlflow.pyfunc.load_model("models:/lorasearch-pairs@best")
    assert model.metadata.get_input_schema().input_names() == ["first", "second"]
    test = pd.read_csv(data / "test.tsv", sep="\t", quoting=csv.QUOTE_NONE, dtype=str)
    expected = lorasearch.predict(tmp_path / "best", list(test["first"]), list(test["second"]))
    assert list(model.predict(test[["second", "first"]])["prediction"]) == expected
    assert list(model.input_example.columns) == ["first", "second"]
    assert set(model.input_example["second"]) <= set(test["second"]) | set(
        _texts(data / "dev.tsv", "second")
    )
    with pytest.raises(mlflow.exceptions.MlflowException, match="second"):
        model.predict(test[["first"]])
    with pytest.raises(LorasearchError, match="columns 'first', 'second'"):
        model.unwrap_python_model().predict(None, list(test["first"]))


def test_input_example_without_the_data_is_neutral_strings(tmp_path):
    """A study whose data is not on this machine (moved, or a hub id) still registers."""
    from lorasearch.tracking.pyfunc import input_example

    meta = {"text_column": "sentence"}
    for data in (None, "", str(tmp_path / "gone"), "glue/sst2"):
        assert list(input_example(meta, data)["sentence"]) == NEUTRAL


def test_registration_errors_are_one_lorasearch_error(tmp_path):
    tracker = MlflowTracking(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(LorasearchError, match="cannot register in the MLflow Model Registry"):
        tracker.register("0123456789abcdef", "lorasearch-x", tmp_path, "why")

"""``lorasearch predict`` and ``lorasearch.predict``: an export predicts what it measured, files
round-trip with a ``prediction`` column, probabilities agree with it, and bad inputs are one line
with exit 2 and nothing written."""

import csv
import json

import pytest
from conftest import toy_rows, write_tsv

import lorasearch
from lorasearch import LorasearchError
from lorasearch.cli import main

FAST = {"steps": 16, "batch_size": 8, "max_length": 16, "eval_every": 8}


def _export(tmp_path_factory, data, model, variant, **columns):
    target = tmp_path_factory.mktemp(variant) / "adapter"
    lorasearch.train(data=data, model=model, variant=variant, export_dir=target, **columns,
                     **FAST)  # fmt: skip
    return target


@pytest.fixture(scope="module")
def exports(toy_data, tiny_bert, tmp_path_factory) -> dict:
    """A LoRA and a Delta-LoRA export (its own loader: changed W) trained on the toy task."""
    return {
        variant: _export(tmp_path_factory, toy_data, tiny_bert, variant, text_column="sentence")
        for variant in ("lora", "delta_lora")
    }


@pytest.fixture(scope="module")
def pair_export(tiny_bert, tmp_path_factory):
    """An adapter trained on sentence pairs: (export folder, data folder)."""
    data = tmp_path_factory.mktemp("pairs")
    for split, n, seed in (("train", 200, 0), ("dev", 40, 1), ("test", 40, 2)):
        pairs = zip(toy_rows(n, seed), toy_rows(n, 9), strict=True)
        rows = [(a, b, label) for (a, label), (b, _) in pairs]
        write_tsv(data / f"{split}.tsv", rows, header=("first", "second", "label"))
    columns = {"text_column": "first", "text_pair_column": "second"}
    return _export(tmp_path_factory, data, tiny_bert, "lora", **columns), data


def _run(capsys, *args) -> str:
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def _error(capsys, *args) -> str:
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lorasearch: error: "), err
    return lines[0].removeprefix("lorasearch: error: ")


def _read_tsv(path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


def _accuracy(rows: list[dict]) -> float:
    return sum(row["prediction"] == row["label"] for row in rows) / len(rows)


@pytest.mark.parametrize("variant", ["lora", "delta_lora"])
def test_predict_reproduces_the_recorded_test_metric(capsys, exports, toy_data, tmp_path, variant):
    adapter = exports[variant]
    recorded = json.loads((adapter / "lorasearch.json").read_text())["test_metric"]
    out = tmp_path / "predicted.tsv"
    assert (
        _run(capsys, "--adapter", adapter, "--input", toy_data / "test.tsv", "--output", out) == ""
    )
    rows = _read_tsv(out)
    assert list(rows[0]) == ["sentence", "label", "prediction"]
    assert _accuracy(rows) == recorded
    # the Python API, from the folder and from a loaded adapter, in small batches
    texts = [row["sentence"] for row in rows]
    assert lorasearch.predict(adapter, texts) == [row["prediction"] for row in rows]
    loaded = lorasearch.load(adapter)
    assert loaded.predict(texts, batch_size=7) == [row["prediction"] for row in rows]


def test_csv_and_jsonl_round_trip_keep_columns_and_order(capsys, exports, toy_data, tmp_path):
    adapter = exports["lora"]
    source = _read_tsv(toy_data / "test.tsv")
    expected = _read_tsv(_predicted_tsv(capsys, adapter, toy_data, tmp_path))
    # CSV with an id column first, quoted commas in the text, rows in reverse order
    rows = [{"id": str(n), "text": r["sentence"] + ", yes", "gold": r["label"]}
            for n, r in enumerate(source)][::-1]  # fmt: skip
    with open(tmp_path / "in.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["id", "text", "gold"])
        writer.writeheader()
        writer.writerows(rows)
    printed = _run(capsys, "--adapter", adapter, "--input", tmp_path / "in.csv",
                   "--text-column", "text")  # fmt: skip
    back = list(csv.DictReader(printed.splitlines()))
    assert [list(r) for r in back] == [["id", "text", "gold", "prediction"]] * len(rows)
    assert [{k: r[k] for k in ("id", "text", "gold")} for r in back] == rows
    direct = lorasearch.predict(adapter, [r["text"] for r in rows])
    assert [r["prediction"] for r in back] == direct
    _run(capsys, "--adapter", adapter, "--input", tmp_path / "in.csv", "--text-column", "text",
         "--output", tmp_path / "out.csv")  # fmt: skip
    assert (tmp_path / "out.csv").read_text() == printed
    # JSON Lines keeps value types (int ids) and per-row key order
    lines = [{"n": n, "sentence": r["sentence"], "label": r["label"]} for n, r in enumerate(source)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = _run(capsys, "--adapter", adapter, "--input", tmp_path / "in.jsonl")
    back = [json.loads(line) for line in out.splitlines()]
    assert [list(r) for r in back] == [["n", "sentence", "label", "prediction"]] * len(lines)
    assert [{k: r[k] for k in ("n", "sentence", "label")} for r in back] == lines
    assert [r["prediction"] for r in back] == [r["prediction"] for r in expected]
    # a JSON array in, a JSON array out
    (tmp_path / "in.json").write_text(json.dumps(lines))
    array = json.loads(_run(capsys, "--adapter", adapter, "--input", tmp_path / "in.json"))
    assert array == back


def _predicted_tsv(capsys, adapter, toy_data, tmp_path):
    out = tmp_path / "expected.tsv"
    _run(capsys, "--adapter", adapter, "--input", toy_data / "test.tsv", "--output", out)
    return out


def test_probabilities_sum_to_one_and_argmax_is_the_prediction(capsys, exports, toy_data):
    adapter = exports["delta_lora"]
    out = _run(capsys, "--adapter", adapter, "--input", toy_data / "test.tsv", "--probabilities",
               "--json")  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines()]
    assert list(rows[0]) == [
        "sentence",
        "label",
        "prediction",
        "probability_neg",
        "probability_pos",
    ]
    for row in rows:
        probs = {label: row[f"probability_{label}"] for label in ("neg", "pos")}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert max(probs, key=probs.get) == row["prediction"]
    texts = [row["sentence"] for row in rows]
    api = lorasearch.predict(adapter, texts, probabilities=True)
    assert api == [{k: row[k] for k in list(row)[2:]} for row in rows]
    proba = lorasearch.load(adapter).predict_proba(texts)
    assert proba == [[row["probability_neg"], row["probability_pos"]] for row in rows]


def test_text_gives_one_line_per_text(capsys, exports):
    adapter = exports["lora"]
    texts = ["the film was great and lovely, superb", "a dull, grim and sad story"]
    expected = lorasearch.predict(adapter, texts)
    out = _run(capsys, "--adapter", adapter, "--text", texts[0], "--text", texts[1])
    assert out.splitlines() == expected
    out = _run(capsys, "--adapter", adapter, "--text", texts[0], "--text", texts[1], "--json",
               "--probabilities")  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["text"], r["prediction"]) for r in rows] == list(zip(texts, expected, strict=True))
    assert set(rows[0]) == {"text", "prediction", "probability_neg", "probability_pos"}
    with_probs = _run(capsys, "--adapter", adapter, "--text", texts[0], "--probabilities")
    assert with_probs.startswith(expected[0] + "\tneg=")


def test_pair_adapter_reads_both_columns(capsys, pair_export, tmp_path):
    adapter, data = pair_export
    recorded = json.loads((adapter / "lorasearch.json").read_text())["test_metric"]
    out = tmp_path / "pairs.tsv"
    _run(capsys, "--adapter", adapter, "--input", data / "test.tsv", "--output", out)
    rows = _read_tsv(out)
    assert _accuracy(rows) == recorded
    first, second = [r["first"] for r in rows[:2]], [r["second"] for r in rows[:2]]
    assert lorasearch.predict(adapter, first, second) == [r["prediction"] for r in rows[:2]]
    by_text = _run(capsys, "--adapter", adapter, "--text", first[0], "--text-pair", second[0])
    assert by_text.strip() == rows[0]["prediction"]
    with pytest.raises(LorasearchError, match="sentence pairs"):
        lorasearch.predict(adapter, first)


def test_bad_inputs_are_one_line_exit_2_and_write_nothing(
    capsys, exports, pair_export, toy_data, tmp_path
):
    adapter, pair_adapter = exports["lora"], pair_export[0]
    test = toy_data / "test.tsv"
    files = tmp_path / "files"
    files.mkdir()
    (files / "empty.csv").write_text("")
    (files / "header.tsv").write_text("sentence\tlabel\n")
    (files / "empty.jsonl").write_text("\n")
    (files / "texts.txt").write_text("a fine film\n")
    (files / "broken.json").write_text('[{"sentence": "a fine film"')
    (files / "binary.csv").write_bytes(b"sentence\n\xff\xfe\x00\x81\n")
    (files / "ragged.csv").write_text("sentence,label\na fine film,pos,extra\n")
    (files / "not-an-adapter").mkdir()
    (files / "not-an-adapter" / "adapter_config.json").write_text("{}")
    out = tmp_path / "out" / "predicted.tsv"
    out.parent.mkdir()
    cases = [
        ("adapter folder", ["--adapter", tmp_path / "missing", "--input", test]),
        ("not a lorasearch export", ["--adapter", files / "not-an-adapter", "--input", test]),
        ("text column 'text' not in", ["--adapter", adapter, "--input", test,
                                       "--text-column", "text"]),
        ("is empty (no rows)", ["--adapter", adapter, "--input", files / "empty.csv"]),
        ("is empty (no rows)", ["--adapter", adapter, "--input", files / "header.tsv"]),
        ("is empty (no rows)", ["--adapter", adapter, "--input", files / "empty.jsonl"]),
        ("unknown format '.txt'", ["--adapter", adapter, "--input", files / "texts.txt"]),
        ("cannot read", ["--adapter", adapter, "--input", files / "broken.json"]),
        ("cannot read", ["--adapter", adapter, "--input", files / "binary.csv"]),
        ("header's 2 fields", ["--adapter", adapter, "--input", files / "ragged.csv"]),
        ("not found", ["--adapter", adapter, "--input", files / "missing.tsv"]),
        # a pair adapter given single texts
        ("text pair column 'second' not in", ["--adapter", pair_adapter, "--input", test,
                                              "--text-column", "sentence"]),
        ("give one --text-pair per --text", ["--adapter", pair_adapter, "--text", "a fine film"]),
        ("trained on single texts", ["--adapter", adapter, "--input", test,
                                     "--text-pair-column", "label"]),
        ("one of them", ["--adapter", adapter, "--input", test, "--text", "a fine film"]),
        ("one of them", ["--adapter", adapter]),
        ("does not exist", ["--adapter", adapter, "--input", test,
                            "--output", tmp_path / "nowhere" / "x.tsv"]),
        ("unknown format '.xlsx'", ["--adapter", adapter, "--input", test,
                                    "--output", out.with_suffix(".xlsx")]),
        ("at least 1", ["--adapter", adapter, "--input", test, "--batch-size", "0"]),
    ]  # fmt: skip
    for expected, args in cases:
        if "--input" in args and "--output" not in args:
            args = [*args, "--output", out]
        message = _error(capsys, *args)
        assert expected in message, (args, message)
        assert list(out.parent.iterdir()) == [], args  # nothing written, not even a temp file
    with pytest.raises(LorasearchError, match="single texts"):
        lorasearch.predict(adapter, ["a"], ["b"])
    with pytest.raises(TypeError, match="list of texts"):
        lorasearch.predict(adapter, "a fine film")


def test_an_export_on_the_bundled_model_loads_where_that_package_sits(
    exports, tiny_bert, tmp_path, monkeypatch
):
    """An export made on the bundled MiniLM records its package, so it loads on a machine where
    that package lives in another site-packages (a registered model served elsewhere); an
    export on any other base keeps its folder."""
    import shutil

    from lorasearch.training import models

    monkeypatch.setattr(models, "default_model", lambda: str(tiny_bert))
    assert models.bundled_package(str(tiny_bert)) == models.BUNDLED_PACKAGE
    assert models.bundled_package(str(tmp_path)) is None
    texts = ["good film", "bad film", "a plot"]
    expected = lorasearch.predict(exports["lora"], texts)
    moved = tmp_path / "adapter"
    shutil.copytree(exports["lora"], moved)
    meta_file = moved / "lorasearch.json"
    meta = json.loads(meta_file.read_text())
    meta["base_model"] = str(tmp_path / "elsewhere" / "site-packages" / "model")  # not here
    meta_file.write_text(json.dumps(meta | {"base_model_package": models.BUNDLED_PACKAGE}))
    assert lorasearch.predict(moved, texts) == expected
    meta_file.write_text(json.dumps(meta | {"base_model_package": None}))
    with pytest.raises(LorasearchError, match="model path not found"):
        lorasearch.predict(moved, texts)

"""The command line: the JSON contract, other architectures, and one-line errors with exit 2."""

import json
import subprocess
import sys

import pytest
from conftest import toy_rows, write_tsv

from lorasearch.cli import main

CONTRACT = {
    "variant", "hyperparameters", "metric_name", "dev_metric", "test_metric", "trainable_params",
    "adapter_params", "head_params", "stored_params", "steps", "steps_per_second",
    "peak_memory_mb", "device", "label_names",
}  # fmt: skip
FAST = ["--steps", "12", "--batch-size", "8", "--max-length", "16", "--eval-every", "6"]


def _json_run(capsys, *args):
    code = main(["train", *args, "--json", *FAST])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize(("kind", "per_rank"), [("llama", 1024), ("gpt2", 1024), ("bert", 960)])
def test_train_json_contract_with_detected_targets(capsys, tiny_models, toy_data, kind, per_rank):
    result = _json_run(
        capsys, "--data", str(toy_data), "--text-column", "sentence",
        "--model", str(tiny_models[kind]), "--rank", "2", "--set", "dropout=0.1",
    )  # fmt: skip
    assert CONTRACT <= set(result)
    assert result["adapter_params"] == 2 * per_rank  # all of the family's projections adapted
    assert result["hyperparameters"] == {
        "rank": 2, "alpha": 4.0, "dropout": 0.1, "lr": 1e-3, "targets": "all", "layers": "all",
        "rslora": False, "init": "kaiming",
    }  # fmt: skip
    assert result["label_names"] == ["neg", "pos"] and result["steps"] == 12


def test_export_refuses_non_empty_folder_then_writes_with_force(
    capsys, tiny_bert, toy_data, tmp_path
):
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "keep.txt").write_text("user file")
    args = [
        "train",
        "--data",
        str(toy_data),
        "--text-column",
        "sentence",
        "--model",
        str(tiny_bert),
    ]
    assert main([*args, *FAST, "--export", str(target)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (target / "keep.txt").read_text() == "user file"
    assert main([*args, *FAST, "--export", str(target), "--force", "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["export_dir"] == str(target)
    assert (target / "adapter_model.safetensors").is_file()
    assert json.loads((target / "lorasearch.json").read_text())["label_names"] == ["neg", "pos"]


def _bad_inputs(tiny_bert, toy_data, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    write_tsv(empty / "train.tsv", [])
    unseen = tmp_path / "unseen"
    unseen.mkdir()
    write_tsv(unseen / "train.tsv", toy_rows(30, 0))
    write_tsv(unseen / "test.tsv", toy_rows(5, 1) + [("so so", "mixed")])
    data = ["--data", str(toy_data), "--text-column", "sentence", "--model", str(tiny_bert)]
    return {
        "missing model": (data[:4] + ["--model", str(tmp_path / "nope")], "model path not found"),
        "not a model": (data[:4] + ["--model", str(tmp_path)], "not a model folder"),
        "missing data": (["--data", str(tmp_path / "none.tsv")], "data path not found"),
        "unknown column": (data[:2] + ["--text-column", "body"], "text column 'body'"),
        "empty split": (["--data", str(empty), "--text-column", "sentence"], "empty"),
        "rank 0": (data + ["--rank", "0"], "rank must be >= 1"),
        "unknown task": (["--task", "sst3"], "unknown task 'sst3'"),
        "unseen label": (["--data", str(unseen), "--text-column", "sentence"], "label 'mixed'"),
        "unknown variant": (data + ["--variant", "lorax"], "unknown variant 'lorax'"),
        "typo'd knob": (data + ["--set", "rnak=4"], "unknown knob 'rnak'"),
        "bad knob value": (data + ["--set", "rank=four"], "knob 'rank' expects int"),
        "no data": ([], "give --task"),
        "bad device": (data + ["--device", "tpu"], "device"),
        "zero steps": (data + ["--steps", "0"], "--steps must be >= 1"),
        "bad option": (data + ["--rnak", "4"], "No such option"),
        "drop_threshold 1.5": (
            data + ["--variant", "lora_drop", "--set", "drop_threshold=1.5"],
            "drop_threshold must be in (0, 1]",
        ),
        "vera_rank 0": (
            data + ["--variant", "vera", "--set", "vera_rank=0"],
            "vera_rank must be >= 1",
        ),
        "delta_lambda < 0": (
            data + ["--variant", "delta_lora", "--set", "delta_lambda=-0.5"],
            "delta_lambda must be in [0, 10]",
        ),
        "knob of another variant": (
            data + ["--variant", "vera", "--rank", "4"],
            "has no knob rank",
        ),
        "lr_ratio below 1": (
            data + ["--variant", "lora_plus", "--set", "lr_ratio=0.5"],
            "lr_ratio",
        ),
        "init below target": (
            data + ["--variant", "adalora", "--set", "target_rank=8", "--set", "init_rank=4"],
            "init_rank must be >= target_rank",
        ),
    }


def test_bad_input_battery_one_line_exit_2(capsys, tiny_bert, toy_data, tmp_path):
    for name, (args, message) in _bad_inputs(tiny_bert, toy_data, tmp_path).items():
        code = main(["train", *FAST, *args])
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert code == 2, (name, err)
        assert len(lines) == 1 and lines[0].startswith("lorasearch: error:"), (name, err)
        assert message in lines[0], (name, lines[0])
        assert out == "", name


def test_console_script_error_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "lorasearch.cli", "train", "--data", str(tmp_path / "x.tsv")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"lorasearch: error: data path not found: {tmp_path / 'x.tsv'}"
    ]


def test_hub_retries_do_not_reach_stderr(caplog):
    """An unreachable Hub is retried with two warning lines a try: quiet, the error line alone
    is what the user reads."""
    import logging

    from lorasearch._quiet import quiet_libraries

    quiet_libraries()
    with caplog.at_level(logging.WARNING):
        logging.getLogger("huggingface_hub.utils._http").warning("Retrying in 1s [Retry 1/5].")
    assert caplog.records == []


def test_a_refit_row_whose_every_seed_failed_prints_failed_and_why(capsys):
    from lorasearch import RefitReport, RefitRow
    from lorasearch._format import show

    failed = ["seed 0: non-finite loss (nan) at step 9", "seed 1: out of memory: CUDA"]
    rows = [
        RefitRow(3, "lora", {"rank": 4}, 0.81, 2, 0.8, 0.01, 0.79, 0.02, 1_234, 1_200),
        RefitRow(
            7, "delta_lora", {"rank": 8}, 0.84, 0, None, None, None, None, 9_876, None, failed
        ),
    ]
    show(RefitReport("s", rows), False, metric="accuracy")
    out = capsys.readouterr().out
    assert "refit over 2 seed(s)" in out
    row = next(line for line in out.splitlines() if "delta_lora" in line)
    assert row.count("failed") == 2 and "9,876" in row
    assert out.splitlines()[-2:] == [
        "trial 7 (delta_lora): seed 0: non-finite loss (nan) at step 9; seed 1: out of memory: "
        "CUDA (no seed trained)",
        "kept in the study: `lorasearch best --study s` now ranks by it",
    ]
    show(RefitReport("s", rows), True)
    assert json.loads(capsys.readouterr().out)["refits"][1]["failed"] == failed

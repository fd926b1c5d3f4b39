"""A study written before the typed, versioned records (main at 4981626) still opens, reports the
same, resumes and exports: tests/fixtures/legacy_study.db (see tests/fixtures/README.md)."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import build_tiny, toy_rows, write_tsv

from lorasearch.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
ARGS = ["--data", "toy", "--text-column", "sentence", "--model", "tiny-bert", "--steps", "20",
        "--eval-every", "10", "--batch-size", "16", "--max-length", "24"]  # fmt: skip


@pytest.fixture
def legacy(tmp_path, monkeypatch) -> Path:
    """A scratch folder holding a copy of the legacy study and the data and model it names (by
    the relative paths it recorded), rebuilt from the same seeds."""
    shutil.copy(FIXTURES / "legacy_study.db", tmp_path / "lorasearch.db")
    (tmp_path / "toy").mkdir()
    for split, seed in (("train", 0), ("dev", 1), ("test", 2)):
        write_tsv(
            tmp_path / "toy" / f"{split}.tsv", toy_rows(600 if split == "train" else 120, seed)
        )
    build_tiny("bert", tmp_path / "tiny-bert")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_a_legacy_study_reports_exactly_as_it_did(legacy, capsys):
    assert main(["pareto", "--study", "legacy", "--json"]) == 0
    assert _json(capsys) == json.loads((FIXTURES / "legacy_study.json").read_text())


def test_a_legacy_study_resumes_and_exports(legacy, capsys):
    before = json.loads((FIXTURES / "legacy_study.json").read_text())
    assert main(["search", *ARGS, "--study", "legacy", "--trials", "2", "--no-tracking",
                 "--json"]) == 0  # fmt: skip
    after = _json(capsys)
    assert len(after["trials"]) == len(before["trials"]) + 2
    old = [{k: v for k, v in t.items() if k != "pareto"} for t in before["trials"]]
    kept = [{k: v for k, v in t.items() if k != "pareto"} for t in after["trials"][: len(old)]]
    assert kept == old  # old trials untouched (new ones may have moved the front)
    assert main(["best", "--study", "legacy", "--export", "out", "--json"]) == 0
    picked = _json(capsys)
    meta = json.loads((legacy / "out" / "lorasearch.json").read_text())
    assert meta["variant"] == picked["variant"] and (legacy / "out" / "README.md").is_file()
    # No MLflow run was stored, so the export retrained the trial as the search did: same dev.
    assert meta["dev_metric"] == pytest.approx(picked["dev_metric"], abs=1e-9)

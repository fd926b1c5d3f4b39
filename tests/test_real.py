"""Real data, real model: the bundled MiniLM with LoRA on ../shared/data/sst2."""

import pytest

from lorasearch.adapters import build_adapter
from lorasearch.training.trainer import TrainConfig
from lorasearch.training.trial import DataConfig, ModelConfig, Trial, run_trial

pytestmark = pytest.mark.real


def test_minilm_lora_r8_learns_sst2(shared_data):
    trial = Trial(
        data=DataConfig(task="sst2", data=str(shared_data / "sst2"), eval_samples=1000),
        model=ModelConfig(),  # the bundled all-MiniLM-L6-v2
        adapter=build_adapter("lora", rank=8),
        train=TrainConfig(steps=200, eval_every=100, seed=0),
    )
    result = run_trial(trial)
    assert result.test_metric >= 0.78, result.test_metric
    # LoRA r=8 on query/key/value/dense of 6 layers + the pooler, hidden 384, MLP 1536:
    # per layer 4·8·(384+384) + 2·8·(384+1536) = 55,296; 6 layers + pooler 6,144; head 384·2+2.
    assert result.adapter_params == 6 * 55_296 + 6_144 == 337_920
    assert result.head_params == 770
    assert result.splits["test"]["rows"] == 872 and result.splits["dev"]["rows"] == 1000


def test_minilm_adalora_at_its_defaults_learns_sst2(shared_data):
    """AdaLoRA's Λ starts at zero: at LoRA's learning rate it stayed at chance for 120 steps
    (test 0.509); its own default must learn within the short budgets a search gives a trial."""
    trial = Trial(
        data=DataConfig(task="sst2", data=str(shared_data / "sst2"), eval_samples=300),
        model=ModelConfig(),
        adapter=build_adapter("adalora"),
        train=TrainConfig(steps=80, eval_every=40, seed=0),
    )
    result = run_trial(trial)
    assert result.test_metric >= 0.70, result.test_metric
    assert result.best_step == 80  # only weights under the final rank budget are chosen


def test_search_best_export_reproduces_the_recorded_test_metric_with_peft(
    shared_data, tmp_path, capsys
):
    """A small real search; `best --export`; a fresh process scores the export with PEFT alone."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from lorasearch.cli import main

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    code = main(
        ["search", "--task", "sst2", "--data", str(shared_data / "sst2"), "--variants", "lora",
         "--trials", "2", "--steps", "60", "--eval-samples", "500", "--study", "real",
         "--storage", storage, "--json"]
    )  # fmt: skip
    assert code == 0
    capsys.readouterr()
    target = tmp_path / "best"
    args = ["best", "--study", "real", "--storage", storage, "--export", str(target), "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["test_metric"] > 0.6  # over chance (0.5) after 60 steps
    scored = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "score_export.py"), str(target),
         str(shared_data / "sst2" / "test.tsv"), "sentence", "label"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert float(scored.stdout) == pytest.approx(out["test_metric"], abs=1e-9)

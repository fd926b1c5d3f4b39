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

"""Resume from a rung: a run killed after a rung and resumed ends exactly where an uninterrupted
one does, for every variant; a checkpoint of another configuration is refused."""

import pytest
import torch

from lorasearch.adapters import VARIANTS, build_adapter
from lorasearch.errors import LorasearchError
from lorasearch.training import checkpoint as ckpt
from lorasearch.training.data import tokenize_task
from lorasearch.training.trainer import TrainConfig, train
from lorasearch.training.trial import DataConfig, ModelConfig, load_inputs

STEPS, RUNG, KILL_AT = 30, 12, 14
# Evaluations at 10, 12 (the rung), 20 and 30: the checkpoint carries a best-on-dev state (10).
# CPU: its kernels are bitwise reproducible; CUDA's atomics (embedding backward) are not, even
# between two uninterrupted runs.
CONFIG = dict(
    steps=STEPS, batch_size=16, max_length=24, eval_every=10, eval_steps=(RUNG,), device="cpu"
)
# Small and fast; every variant's own machinery is active after the rung: AdaLoRA allocates
# every 2 steps and fixes its budget at step 24, Delta-LoRA moves W from step 5.
KNOBS = {
    "lora": dict(rank=4),
    "lora_plus": dict(rank=4),
    "vera": dict(vera_rank=16),
    "lora_fa": dict(rank=4),
    "lora_drop": dict(rank=4, drop_threshold=0.6, drop_steps=5),
    "adalora": dict(target_rank=2, init_rank=4, delta_t=2),
    "dora": dict(rank=4),
    "delta_lora": dict(rank=4, delta_start=5),
}


class Killed(Exception):
    """Stands in for a kill: raised from ``on_step`` mid-run."""


def _run(toy_data, tiny_bert, variant, checkpoint=None, kill_at=None, lr=5e-3, **config):
    """Train ``variant`` on the toy task; returns the result, the model's full state at the last
    step (every weight, the frozen ones included) and at the end (best-on-dev loaded)."""
    data = DataConfig(data=str(toy_data), text_column="sentence")
    task, loaded = load_inputs(data, ModelConfig(model=str(tiny_bert)))
    last: dict[str, torch.Tensor] = {}

    def on_step(step: int, _loss: float) -> None:
        if step == kill_at:
            raise Killed(step)
        if step == STEPS:
            last.update({k: v.clone() for k, v in loaded.model.state_dict().items()})

    result = train(
        loaded,
        build_adapter(variant, lr=lr, **KNOBS[variant]),
        task,
        tokenize_task(task, loaded.tokenizer, CONFIG["max_length"]),
        TrainConfig(**(CONFIG | config)),
        on_step=on_step,
        checkpoint=checkpoint,
    )
    return result, last, loaded.model.state_dict()


def _assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, different[:5]


def test_every_variant_is_covered():
    assert set(KNOBS) == set(VARIANTS)


@pytest.mark.parametrize("variant", sorted(KNOBS))
def test_killed_after_a_rung_then_resumed_equals_an_uninterrupted_run(
    toy_data, tiny_bert, tmp_path, variant
):
    whole, whole_last, whole_end = _run(toy_data, tiny_bert, variant)
    with pytest.raises(Killed):
        _run(toy_data, tiny_bert, variant, checkpoint=tmp_path, kill_at=KILL_AT)
    resumed, resumed_last, resumed_end = _run(toy_data, tiny_bert, variant, checkpoint=tmp_path)

    assert whole.resumed_from == 0 and resumed.resumed_from == RUNG
    assert resumed.curve == whole.curve  # the points before the rung come from the checkpoint
    assert [p.step for p in whole.curve] == [10, RUNG, 20, 30]
    _assert_same_tensors(resumed_last, whole_last)  # step 30: every weight, frozen ones too
    _assert_same_tensors(resumed_end, whole_end)  # best-on-dev loaded
    assert (resumed.dev_metric, resumed.best_step) == (whole.dev_metric, whole.best_step)
    assert resumed.test_metric == whole.test_metric
    assert resumed.adapter_details == whole.adapter_details  # AdaLoRA's ranks, LoRA-drop's kept
    assert resumed.steps == STEPS and resumed.train_time_s > 0


def test_a_checkpoint_of_another_configuration_is_refused(toy_data, tiny_bert, tmp_path):
    with pytest.raises(Killed):
        _run(toy_data, tiny_bert, "lora", checkpoint=tmp_path, kill_at=KILL_AT)
    with pytest.raises(LorasearchError, match="another configuration") as error:
        _run(toy_data, tiny_bert, "lora", checkpoint=tmp_path, lr=1e-3)
    assert "\n" not in str(error.value)
    other_rungs, _, _ = _run(
        toy_data, tiny_bert, "lora", checkpoint=tmp_path, eval_steps=(RUNG, 25)
    )
    assert other_rungs.resumed_from == RUNG  # the rungs are not part of the configuration


def test_no_checkpoint_yet_is_a_normal_run_that_writes_one(toy_data, tiny_bert, tmp_path):
    folder = tmp_path / "not-yet"
    plain, _, plain_end = _run(toy_data, tiny_bert, "lora")
    fresh, _, fresh_end = _run(toy_data, tiny_bert, "lora", checkpoint=folder)
    assert fresh.resumed_from == 0 and fresh.curve == plain.curve
    _assert_same_tensors(fresh_end, plain_end)
    saved = torch.load(folder / ckpt.FILE, weights_only=True)
    assert saved["loop"]["step"] == RUNG  # the last rung below the budget
    assert sorted(p.name for p in folder.iterdir()) == [ckpt.FILE]


def test_a_kill_while_writing_leaves_the_previous_checkpoint(
    toy_data, tiny_bert, tmp_path, monkeypatch
):
    real_save, saves = torch.save, []

    def dies_on_the_second_write(payload, path):
        saves.append(payload["loop"]["step"])
        if len(saves) == 2:
            path.write_bytes(b"half a checkpoint")
            raise Killed(path)
        real_save(payload, path)

    monkeypatch.setattr(torch, "save", dies_on_the_second_write)
    with pytest.raises(Killed):
        _run(toy_data, tiny_bert, "lora", checkpoint=tmp_path, eval_steps=(RUNG, 16))
    monkeypatch.setattr(torch, "save", real_save)
    resumed, _, _ = _run(toy_data, tiny_bert, "lora", checkpoint=tmp_path, eval_steps=(RUNG, 16))
    assert saves == [RUNG, 16] and resumed.resumed_from == RUNG

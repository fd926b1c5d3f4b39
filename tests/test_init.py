"""Scaling and initialisation knobs of the LoRA family: alpha_ratio, rsLoRA, PEFT's inits.

Each (variant, init, rslora) injects exactly what PEFT's own ``get_peft_model`` builds; PiSSA and
OLoRA satisfy their defining equations; their exports (converted by PEFT to a rank-2r LoRA of the
original weights) load on a fresh original base and give the trained model's logits; a PiSSA run
resumes bit for bit.
"""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from lorasearch.adapters import VARIANTS, InjectContext, build_adapter
from lorasearch.adapters.lora import lora_layers
from lorasearch.errors import LorasearchError
from lorasearch.training.data import tokenize_task
from lorasearch.training.models import load_model
from lorasearch.training.trainer import TrainConfig, evaluate, train
from lorasearch.training.trial import DataConfig, ModelConfig, load_inputs

FAMILY = ["lora", "lora_plus", "lora_fa", "dora", "delta_lora"]
INITS = ["kaiming", "gaussian", "pissa", "olora"]
SUM_IN_OUT, HEAD = 960, 66
CPU = torch.device("cpu")  # tiny BERT: Σ(d_in + d_out) over its 13 adapted modules; its head


def _ids(n=3, length=7):
    return torch.randint(1000, 2000, (n, length), generator=torch.Generator().manual_seed(5))


def _ours(folder, variant, **knobs):
    loaded = load_model(str(folder), ["neg", "pos"], seed=0)
    adapter = build_adapter(variant, **knobs)
    context = InjectContext(loaded.head_modules, loaded.target_modules, 0, 40)
    return adapter, context, adapter.inject(loaded.model, context)


def _peft(folder, variant, rank, alpha, init, rslora):
    """PEFT's own construction of the same configuration, written out here independently."""
    import peft

    loaded = load_model(str(folder), ["neg", "pos"], seed=0)
    config = peft.LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.0 if variant == "delta_lora" else 0.05,
        use_rslora=rslora,
        use_dora=variant == "dora",
        init_lora_weights=True if init == "kaiming" else init,
        target_modules=loaded.target_modules,
        modules_to_save=loaded.head_modules,
        fan_in_fan_out="gpt2" in str(folder),
        task_type=peft.TaskType.SEQ_CLS,
    )
    torch.manual_seed(0)
    return peft.get_peft_model(loaded.model, config)


def _assert_identical(ours, reference):
    ours_state, reference_state = ours.state_dict(), reference.state_dict()
    assert ours_state.keys() == reference_state.keys()
    different = [k for k in ours_state if not torch.equal(ours_state[k], reference_state[k])]
    assert not different, different[:5]  # adapter tensors and the (possibly rewritten) base
    ours.eval(), reference.eval()
    with torch.no_grad():
        assert torch.equal(ours(input_ids=_ids()).logits, reference(input_ids=_ids()).logits)


# --- equality with PEFT ---------------------------------------------------------------------------


@pytest.mark.parametrize("rslora", [False, True])
@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("variant", FAMILY)
def test_same_tensors_and_logits_as_peft(tiny_bert, variant, init, rslora):
    _, _, ours = _ours(tiny_bert, variant, rank=4, alpha=6.0, init=init, rslora=rslora)
    reference = _peft(tiny_bert, variant, 4, 6.0, init, rslora)
    _assert_identical(ours, reference)
    query = lora_layers(ours)["base_model.model.bert.encoder.layer.0.attention.self.query"]
    original = load_model(str(tiny_bert), ["neg", "pos"], seed=0).model
    w = original.bert.encoder.layer[0].attention.self.query.weight
    assert torch.equal(query.base_layer.weight, w) == (init not in ("pissa", "olora"))


@pytest.mark.parametrize("rslora", [False, True])
def test_gpt2_conv1d_pissa_same_as_peft_and_splits_w(tiny_models, rslora):
    _, _, ours = _ours(tiny_models["gpt2"], "lora", rank=4, alpha=8.0, init="pissa", rslora=rslora)
    _assert_identical(ours, _peft(tiny_models["gpt2"], "lora", 4, 8.0, "pissa", rslora))
    original = load_model(str(tiny_models["gpt2"]), ["neg", "pos"], seed=0).model
    layer = lora_layers(ours)["base_model.model.transformer.h.0.attn.c_attn"]
    w = original.transformer.h[0].attn.c_attn.weight.T  # Conv1D stores (d_in, d_out)
    b0, a0 = layer.lora_B["default"].weight, layer.lora_A["default"].weight
    scale = 8.0 / (2.0 if rslora else 4.0)
    assert torch.allclose(layer.base_layer.weight.T + scale * b0 @ a0, w, atol=1e-5)


def test_olora_on_conv1d_is_refused(tiny_models):
    with pytest.raises(LorasearchError, match="olora does not support GPT-2's Conv1D"):
        _ours(tiny_models["gpt2"], "lora", rank=4, init="olora")


@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_a_rank_above_a_modules_smaller_side_is_refused(tiny_bert, init):
    # hidden 32: rank 33 has no 33rd singular vector (or QR column) to take; kaiming has no limit
    with pytest.raises(LorasearchError, match=f"init {init} needs rank <= min\\(in, out\\)"):
        _ours(tiny_bert, "lora", rank=33, init=init)
    _ours(tiny_bert, "lora", rank=32, init=init)
    _ours(tiny_bert, "lora", rank=33, init="kaiming")


# --- the defining equations -----------------------------------------------------------------------


@pytest.mark.parametrize("rslora", [False, True])
def test_pissa_is_the_top_r_singular_part_and_the_residual(tiny_bert, rslora):
    adapter, _, model = _ours(tiny_bert, "lora", rank=4, alpha=6.0, init="pissa", rslora=rslora)
    original = load_model(str(tiny_bert), ["neg", "pos"], seed=0).model
    layer = lora_layers(model)["base_model.model.bert.encoder.layer.1.intermediate.dense"]
    w = original.bert.encoder.layer[1].intermediate.dense.weight  # (64, 32)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    scale = 6.0 / (2.0 if rslora else 4.0)
    assert layer.scaling["default"] == adapter.config.scale == pytest.approx(scale)
    root = torch.sqrt(s[:4] / scale)
    a0, b0 = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    assert torch.allclose(a0, root[:, None] * vh[:4], atol=1e-5)  # √(σ/s)·vᵢᵀ
    assert torch.allclose(b0, u[:, :4] * root[None, :], atol=1e-5)  # uᵢ·√(σ/s)
    assert torch.allclose(layer.base_layer.weight + scale * b0 @ a0, w, atol=1e-5)
    residual = torch.linalg.svdvals(layer.base_layer.weight)
    assert torch.allclose(residual[:4], s[4:8], atol=1e-5)  # W_res holds the rest of the spectrum


def test_olora_is_the_first_r_of_a_qr_and_the_residual(tiny_bert):
    _, _, model = _ours(tiny_bert, "dora", rank=4, alpha=8.0, init="olora")
    original = load_model(str(tiny_bert), ["neg", "pos"], seed=0).model
    layer = lora_layers(model)["base_model.model.bert.encoder.layer.0.output.dense"]
    w = original.bert.encoder.layer[0].output.dense.weight  # (32, 64)
    q, r = torch.linalg.qr(w)
    b0, a0 = layer.lora_B["default"].weight, layer.lora_A["default"].weight
    assert torch.equal(b0, q[:, :4]) and torch.equal(a0, r[:4])
    assert torch.allclose(layer.base_layer.weight + 2.0 * b0 @ a0, w, atol=1e-5)
    magnitude = layer.lora_magnitude_vector["default"].weight
    assert torch.allclose(magnitude, w.norm(dim=1), atol=1e-5)  # DoRA's m is ‖W‖ per row


@pytest.mark.parametrize("variant", FAMILY)
def test_rslora_scale_is_alpha_over_root_rank(tiny_bert, variant):
    adapter, _, model = _ours(tiny_bert, variant, rank=9, alpha=6.0, rslora=True)
    scales = {layer.scaling["default"] for layer in lora_layers(model).values()}
    assert scales == {6.0 / 3.0} and adapter.config.scale == 2.0
    _, _, model = _ours(tiny_bert, variant, rank=9, alpha=6.0)
    assert {layer.scaling["default"] for layer in lora_layers(model).values()} == {6.0 / 9.0}


@pytest.mark.parametrize("variant", FAMILY)
def test_alpha_ratio_becomes_alpha_times_rank(variant):
    cls = VARIANTS[variant]
    assert list(cls.search_knobs)[-3:] == ["alpha_ratio", "rslora", "init"]  # appended last
    drawn = {"rank": 4, "alpha_ratio": 3.0, "rslora": True, "init": "pissa", "lr": 1e-3}
    knobs = cls.from_search(drawn, 40)
    assert knobs == {"rank": 4, "alpha": 12.0, "rslora": True, "init": "pissa", "lr": 1e-3}
    adapter = build_adapter(variant, **knobs)
    assert adapter.config.alpha == 12.0 and adapter.config.scale == 12.0 / 2.0
    fixed = cls.from_search({"rank": 4, "alpha_ratio": 3.0, "alpha": 5.0}, 40)
    assert fixed == {"rank": 4, "alpha": 5.0}  # an alpha a space file fixes wins
    no_rank = cls.from_search({"alpha_ratio": 0.5}, 40)
    assert no_rank == {"alpha": 0.5 * 8}  # rank's default


def test_delta_lora_from_search_composes_both_conversions():
    knobs = VARIANTS["delta_lora"].from_search(
        {"rank": 2, "alpha_ratio": 4.0, "delta_start": 0.25}, 40
    )
    assert knobs == {"rank": 2, "alpha": 8.0, "delta_start": 10}


def test_a_refit_at_another_budget_keeps_delta_start_as_a_fraction_of_the_run():
    knobs = {"rank": 2, "alpha": 8.0, "delta_start": 10}  # drawn for 40 steps (0.25)
    longer = VARIANTS["delta_lora"].for_steps(knobs, 40, 100)
    assert longer == {"rank": 2, "alpha": 8.0, "delta_start": 25}
    assert VARIANTS["delta_lora"].for_steps(knobs, 40, 40) == knobs
    assert VARIANTS["lora"].for_steps({"rank": 2}, 40, 100) == {"rank": 2}  # nothing counts steps


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"init": "loftq"}, "init must be one of kaiming, gaussian, pissa, olora, got loftq"),
        ({"rslora": "yes"}, "rslora must be true or false"),
    ],
)
def test_bad_init_knobs(knobs, message):
    with pytest.raises(LorasearchError, match=message):
        build_adapter("lora", **knobs)


# --- export round trip through the real trainer ---------------------------------------------------


def _train(toy_data, tiny_bert, variant, knobs, checkpoint=None, export_dir=None, steps=20):
    data = DataConfig(data=str(toy_data), text_column="sentence")
    task, loaded = load_inputs(data, ModelConfig(model=str(tiny_bert)))
    config = TrainConfig(
        steps=steps, batch_size=16, max_length=24, eval_every=10, eval_steps=(12,), device="cpu"
    )
    result = train(
        loaded,
        build_adapter(variant, lr=5e-3, **knobs),
        task,
        tokenize_task(task, loaded.tokenizer, config.max_length),
        config,
        export_dir=export_dir,
        checkpoint=checkpoint,
    )
    return result, loaded.model


@pytest.mark.parametrize(
    ("variant", "knobs", "per_rank"),
    [
        ("lora", {"init": "pissa"}, 2 * SUM_IN_OUT),  # [A | A₀], [B | −B₀]: rank 2r
        ("dora", {"init": "olora", "rslora": True}, 2 * SUM_IN_OUT),
        ("lora_fa", {"init": "pissa"}, 2 * SUM_IN_OUT),
        ("delta_lora", {"init": "pissa"}, None),  # stores W itself: no conversion
    ],
)
def test_export_loads_on_the_original_base_with_the_trained_logits(
    toy_data, tiny_bert, tmp_path, variant, knobs, per_rank
):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    result, trained = _train(toy_data, tiny_bert, variant, {"rank": 4} | knobs, export_dir=tmp_path)
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    reloaded = VARIANTS[variant].load_export(base, tmp_path).eval()
    assert isinstance(reloaded, PeftModel)
    trained.eval()
    with torch.no_grad():
        ids = _ids(4, 9)
        expected = trained(input_ids=ids).logits
        assert torch.allclose(reloaded(input_ids=ids).logits, expected, atol=1e-5, rtol=0)
    task, _ = load_inputs(
        DataConfig(data=str(toy_data), text_column="sentence"), ModelConfig(model=str(tiny_bert))
    )
    dev = tokenize_task(task, _.tokenizer, 24)["dev"]
    config = TrainConfig(batch_size=16, max_length=24, device="cpu")
    assert evaluate(reloaded, dev, "accuracy", config, 0, CPU) == pytest.approx(result.dev_metric)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["init_lora_weights"] is True  # loading never splits the base again
    stored = load_file(tmp_path / "adapter_model.safetensors")
    numel = sum(t.numel() for t in stored.values())
    if per_rank is not None:
        assert saved["r"] == 8 and saved["lora_alpha"] == pytest.approx(
            8.0 * 2**0.5 if knobs.get("rslora") else 16.0
        )  # rank 2r at the same scale
        magnitude = 480 if variant == "dora" else 0  # DoRA's m: Σ d_out
        assert result.stored_params == numel == 4 * per_rank + magnitude + HEAD
    else:
        moved = load_file(tmp_path / "delta_weights.safetensors")
        assert result.stored_params == numel + sum(t.numel() for t in moved.values())


# --- resume ---------------------------------------------------------------------------------------


def test_pissa_run_killed_after_a_rung_resumes_bit_for_bit(toy_data, tiny_bert, tmp_path):
    """A resumed run re-injects: PiSSA's SVD is deterministic, so W_res and A₀, B₀ are the same
    and the checkpoint needs only the trained tensors."""

    class Killed(Exception):
        pass

    knobs = {"rank": 4, "init": "pissa", "rslora": True}
    whole, whole_model = _train(toy_data, tiny_bert, "lora", knobs, steps=30)

    def kill(step, _loss):
        if step == 14:
            raise Killed

    data = DataConfig(data=str(toy_data), text_column="sentence")
    task, loaded = load_inputs(data, ModelConfig(model=str(tiny_bert)))
    config = TrainConfig(
        steps=30, batch_size=16, max_length=24, eval_every=10, eval_steps=(12,), device="cpu"
    )
    tokens = tokenize_task(task, loaded.tokenizer, config.max_length)
    adapter = build_adapter("lora", lr=5e-3, **knobs)
    with pytest.raises(Killed):
        train(loaded, adapter, task, tokens, config, on_step=kill, checkpoint=tmp_path)
    resumed, resumed_model = _train(toy_data, tiny_bert, "lora", knobs, tmp_path, steps=30)
    assert resumed.resumed_from == 12 and resumed.curve == whole.curve
    whole_state, resumed_state = whole_model.state_dict(), resumed_model.state_dict()
    assert whole_state.keys() == resumed_state.keys()
    assert all(torch.equal(whole_state[k], resumed_state[k]) for k in whole_state)
    assert (
        math.isclose(resumed.dev_metric, whole.dev_metric)
        and resumed.test_metric == whole.test_metric
    )


def test_lora_drop_offers_no_base_changing_init():
    """LoRA-drop shares one A, B among modules: no module-specific B₀·A₀ split is possible."""
    cls = VARIANTS["lora_drop"]
    assert list(cls.search_knobs) == [
        "rank",
        "lr",
        "drop_threshold",
        "alpha_ratio",
        "rslora",
        "init",
    ]
    assert cls.search_knobs["init"].choices == ("kaiming", "gaussian")
    with pytest.raises(
        LorasearchError, match="'lora_drop' offers init kaiming, gaussian, got pissa"
    ):
        build_adapter("lora_drop", init="pissa")

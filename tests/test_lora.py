"""LoRA through PEFT: the defining equation, exact counts, and export round trips."""

import pytest
import torch
from safetensors.torch import load_file

from lorasearch.adapters import InjectContext, build_adapter
from lorasearch.training.models import load_model

# Per adapted module r·(d_in + d_out); the tiny models have hidden 32, MLP 64 (GPT-2: 4·32 = 128).
#   bert : per layer q, k, v, attn-out 4·(32+32) + intermediate (32+64) + output (64+32) = 448; two
#          layers plus the pooler's dense (32+32): 2·448 + 64 = 960 per unit of rank. Head 32·2 + 2.
#   llama: q (32+32), k, v (32+16: 2 kv heads of 8), o (32+32), gate, up (32+64), down (64+32) =
#          512 per layer, 1024 in all. Head (score, no bias) 32·2.
#   gpt2 : c_attn (32+96), attn c_proj (32+32), c_fc (32+128), mlp c_proj (128+32) = 512 per layer.
PER_RANK = {"bert": 960, "llama": 1024, "gpt2": 1024}
HEAD = {"bert": 66, "llama": 64, "gpt2": 64}


def _inject(folder, rank=4, **knobs):
    loaded = load_model(str(folder), ["neg", "pos"], seed=0)
    adapter = build_adapter("lora", rank=rank, **knobs)
    context = InjectContext(loaded.head_modules, loaded.target_modules, seed=0)
    return loaded, adapter, context, adapter.inject(loaded.model, context)


@pytest.mark.parametrize("kind", ["bert", "llama", "gpt2"])
@pytest.mark.parametrize("rank", [1, 4])
def test_counts_match_closed_form(tiny_models, kind, rank):
    _, adapter, context, model = _inject(tiny_models[kind], rank=rank)
    counts = adapter.counts(model, context)
    assert counts.adapter == PER_RANK[kind] * rank
    assert counts.head == HEAD[kind]
    assert counts.stored == counts.adapter + counts.head
    assert counts.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_update_is_scaled_b_a_and_zero_at_start(tiny_bert):
    loaded, adapter, _, model = _inject(tiny_bert, rank=4, alpha=12.0)
    ids = torch.randint(1000, 2000, (3, 7))
    model.eval()
    base_logits = model.get_base_model()(input_ids=ids).logits
    with model.disable_adapter():
        assert torch.allclose(model(input_ids=ids).logits, base_logits)
    assert (
        model.base_model.model.bert.encoder.layer[0]
        .attention.self.query.lora_B["default"]
        .weight.abs()
        .sum()
        == 0
    )  # B = 0: ΔW = 0 at init

    layer = model.base_model.model.bert.encoder.layer[0].attention.self.query
    torch.nn.init.normal_(layer.lora_B["default"].weight)
    x = torch.randn(5, 32)
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    expected = x @ layer.base_layer.weight.T + layer.base_layer.bias + (12.0 / 4) * (x @ a.T @ b.T)
    assert torch.allclose(layer(x), expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_export_loads_with_peft_and_predicts_the_same(tiny_models, tmp_path, kind):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    loaded, adapter, context, model = _inject(tiny_models[kind], rank=2)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.normal_(0, 0.1)  # as if trained: non-zero B, changed head
    adapter.export(model, tmp_path)
    stored = load_file(tmp_path / "adapter_model.safetensors")
    assert sum(t.numel() for t in stored.values()) == adapter.counts(model, context).stored

    base = AutoModelForSequenceClassification.from_pretrained(tiny_models[kind], num_labels=2)
    base.config.pad_token_id = 0
    reloaded = PeftModel.from_pretrained(base, tmp_path).eval()
    ids = torch.randint(1000, 2000, (4, 9))
    model.eval()
    assert torch.allclose(reloaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-5)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"rank": 0}, "rank must be >= 1"),
        ({"alpha": -1.0}, "alpha must be > 0"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"lr": 0.0}, "lr must be in"),
        ({"lr_ratio": 16}, "variant 'lora' has no knob lr_ratio"),
    ],
)
def test_bad_knobs(knobs, message):
    from lorasearch.errors import LorasearchError

    with pytest.raises(LorasearchError, match=message):
        build_adapter("lora", **knobs)

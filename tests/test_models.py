"""Model loading: detected targets per architecture, the head, seeded head init, bad paths."""

import pytest

from lorasearch.errors import LorasearchError
from lorasearch.training.models import load_model

EXPECTED_SUFFIXES = {
    "bert": {"query", "key", "value", "dense"},
    "llama": {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
    "gpt2": {"c_attn", "c_proj", "c_fc"},
}
EXPECTED_HEAD = {"bert": ["classifier"], "llama": ["score"], "gpt2": ["score"]}


@pytest.mark.parametrize("kind", ["bert", "llama", "gpt2"])
def test_targets_and_head_are_detected(tiny_models, kind):
    loaded = load_model(str(tiny_models[kind]), ["a", "b"])
    suffixes = {name.rsplit(".", 1)[-1] for name in loaded.target_modules}
    assert suffixes == EXPECTED_SUFFIXES[kind]
    assert loaded.head_modules == EXPECTED_HEAD[kind]
    assert not any(name.startswith(tuple(loaded.head_modules)) for name in loaded.target_modules)
    assert not any(p.requires_grad for p in loaded.model.parameters())  # frozen until injected


def test_target_override_and_unknown_target(tiny_bert):
    loaded = load_model(str(tiny_bert), ["a", "b"], targets=["query", "value"])
    assert len(loaded.target_modules) == 4  # 2 layers x (query, value)
    with pytest.raises(LorasearchError, match="target module.*q_proj.*not found"):
        load_model(str(tiny_bert), ["a", "b"], targets=["q_proj"])


def test_head_is_seeded_and_each_trial_gets_a_fresh_copy(tiny_bert):
    a = load_model(str(tiny_bert), ["a", "b"], seed=1)
    b = load_model(str(tiny_bert), ["a", "b"], seed=1)
    c = load_model(str(tiny_bert), ["a", "b"], seed=2)
    weight = lambda m: m.model.classifier.weight  # noqa: E731
    assert a.model is not b.model
    assert weight(a).equal(weight(b)) and not weight(a).equal(weight(c))
    assert a.model.config.id2label == {0: "a", 1: "b"}


def test_bad_model_paths(tmp_path):
    with pytest.raises(LorasearchError, match="model path not found"):
        load_model("./no/such/model", ["a", "b"])
    with pytest.raises(LorasearchError, match="not a model folder"):
        load_model(str(tmp_path), ["a", "b"])

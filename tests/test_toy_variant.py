"""A variant defined in this file alone and registered in one line is searched, counted and
exported through the CLI, with no other change to the package.

The toy is IA³ [Liu et al. 2022] through PEFT's ``IA3Config``: a learned vector rescales each
adapted layer's output (or, with ``scale_inputs``, its input). On the tiny BERT (see
test_variants.py) that is Σ d_out = Σ d_in = 480 trained numbers, plus the head's 66.
"""

import json
from dataclasses import dataclass

import pytest
import torch
from peft import get_peft_model_state_dict
from safetensors.torch import load_file

from lorasearch.adapters import VARIANTS, AdapterConfig, InjectContext, PeftAdapter, register
from lorasearch.adapters.knobs import float_range, int_range
from lorasearch.adapters.peft_base import peft_fields
from lorasearch.cli import main
from lorasearch.training.models import load_model

SUM_OUT, HEAD = 480, 66


@dataclass
class Ia3Config(AdapterConfig):
    """IA³'s knobs: a learning rate (its vectors start at 1 and want more than LoRA's), and
    whether the vectors rescale the layers' inputs instead of their outputs."""

    lr: float = 1e-2
    scale_inputs: bool = False


class Ia3Adapter(PeftAdapter):
    name = "toy_ia3"
    description = "IA³ [Liu et al. 2022]: a learned vector rescales each layer's output — PEFT's."
    config_class = Ia3Config
    config: Ia3Config
    search_knobs = {"lr": float_range(1e-3, 5e-2), "scale_inputs": int_range(0, 1, log=False)}

    @classmethod
    def from_search(cls, drawn, total_steps):
        return dict(drawn) | {"scale_inputs": bool(drawn.get("scale_inputs", False))}

    def peft_config(self, model, context: InjectContext):
        from peft import IA3Config

        fields = peft_fields(model, context)
        scaled_inputs = fields["target_modules"] if self.config.scale_inputs else []
        return IA3Config(feedforward_modules=scaled_inputs, **fields)


@pytest.fixture
def toy_variant():
    register(Ia3Adapter)  # the one line a new variant needs
    yield Ia3Adapter
    VARIANTS.pop(Ia3Adapter.name)


def _built_count(tiny_bert, scale_inputs: bool) -> int:
    """Trainable parameters of the tiny BERT with the toy injected, counted on the model."""
    loaded = load_model(str(tiny_bert), ["neg", "pos"], seed=0)
    context = InjectContext(loaded.head_modules, loaded.target_modules, seed=0, total_steps=10)
    model = Ia3Adapter(Ia3Config(scale_inputs=scale_inputs)).inject(loaded.model, context)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_a_toy_variant_is_searched_counted_and_exported(
    toy_variant, capsys, toy_data, tiny_bert, tmp_path, monkeypatch
):
    from transformers import AutoModelForSequenceClassification

    from lorasearch.training.data import tokenize_task
    from lorasearch.training.trainer import TrainConfig, evaluate
    from lorasearch.training.trial import DataConfig, load_data

    monkeypatch.chdir(tmp_path)
    assert "toy_ia3" in json.loads(_run(capsys, ["variants", "--json"]))

    # (a) the search draws it
    data = ["--data", str(toy_data), "--text-column", "sentence", "--model", str(tiny_bert)]
    fast = ["--steps", "10", "--eval-every", "5", "--batch-size", "16", "--max-length", "24"]
    search = [
        *data,
        *fast,
        "--trials",
        "2",
        "--variants",
        "toy_ia3",
        "--no-early-stop",
        "--no-fidelity",
        "--targets",  # the placement knobs fixed: every detected module, as counted below
        "all",
        "--layers",
        "all",
    ]
    report = json.loads(_run(capsys, ["search", *search, "--json"]))
    trials = report["trials"]
    assert [t["variant"] for t in trials] == ["toy_ia3", "toy_ia3"]
    assert all(t["state"] == "COMPLETE" for t in trials)
    assert {type(t["params"]["scale_inputs"]) for t in trials} == {bool}  # from_search ran

    # (b) its recorded parameter count is the built model's
    for trial in trials:
        built = _built_count(tiny_bert, trial["params"]["scale_inputs"])
        assert trial["values"][1] == built == SUM_OUT + HEAD

    # (c) `best` exports it; the export loads with the variant's loader and scores the same
    export = tmp_path / "export"
    _run(capsys, ["best", "--study", report["study"], "--export", str(export), "--json"])
    meta = json.loads((export / "lorasearch.json").read_text())
    assert meta["variant"] == "toy_ia3" and meta["trainable_params"] == SUM_OUT + HEAD
    assert "PeftModel.from_pretrained(base, ADAPTER_DIR)" in (export / "README.md").read_text()
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    loaded_export = Ia3Adapter.load_export(base, export)
    stored = load_file(export / "adapter_model.safetensors")
    vectors = {name: tensor for name, tensor in stored.items() if "ia3_l" in name}
    assert sum(t.numel() for t in vectors.values()) == SUM_OUT
    assert any(not torch.equal(t, torch.ones_like(t)) for t in vectors.values())  # trained
    reloaded = get_peft_model_state_dict(loaded_export)
    assert reloaded.keys() == stored.keys()
    assert all(torch.equal(reloaded[name], tensor) for name, tensor in stored.items())

    task = load_data(DataConfig(data=str(toy_data), text_column="sentence"))
    splits = tokenize_task(task, load_model(str(tiny_bert), task.label_names).tokenizer, 24)
    config = TrainConfig(steps=10, max_length=24)
    cpu = torch.device("cpu")
    dev = evaluate(loaded_export, splits["dev"], "accuracy", config, 0, cpu)
    test = evaluate(loaded_export, splits["test"], "accuracy", config, 0, cpu)
    assert (dev, test) == (pytest.approx(meta["dev_metric"]), pytest.approx(meta["test_metric"]))


def test_unregistered_after_the_fixture():
    assert "toy_ia3" not in VARIANTS


def _run(capsys, argv: list[str]) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out

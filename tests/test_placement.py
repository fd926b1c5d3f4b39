"""Where to adapt: target groups and layer specs on BERT, GPT-2 and LLaMA (4 blocks, hidden 32).

Roles per block: BERT query, key, value, attention.output.dense (o), intermediate.dense (ffn_in),
output.dense (ffn_out), plus the pooler outside every block; GPT-2 attn.c_attn (q, k and v
fused), attn.c_proj (o), mlp.c_fc, mlp.c_proj; LLaMA q/k/v/o_proj, gate/up_proj, down_proj.
"""

import json

import pytest
import torch

from lorasearch.adapters import VARIANTS, build_adapter
from lorasearch.adapters.placement import LAYER_CHOICES, TARGET_GROUPS, place, role
from lorasearch.cli import main
from lorasearch.errors import LorasearchError
from lorasearch.training.data import tokenize_task
from lorasearch.training.models import load_model
from lorasearch.training.trainer import TrainConfig, train
from lorasearch.training.trial import DataConfig, ModelConfig, Trial, load_inputs, planned_counts

BLOCKS = 4
# Per kind: the blocks' path prefix and each group's projections inside a block, in model order.
LAYOUT = {
    "bert": ("bert.encoder.layer", {
        "all": ["attention.self.query", "attention.self.key", "attention.self.value",
                "attention.output.dense", "intermediate.dense", "output.dense"],
        "ffn": ["intermediate.dense", "output.dense"],
        "attention": ["attention.self.query", "attention.self.key", "attention.self.value",
                      "attention.output.dense"],
        "qv": ["attention.self.query", "attention.self.value"],
    }),
    "gpt2": ("transformer.h", {
        "all": ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"],
        "ffn": ["mlp.c_fc", "mlp.c_proj"],
        "attention": ["attn.c_attn", "attn.c_proj"],
        "qv": ["attn.c_attn"],
    }),
    "llama": ("model.layers", {
        "all": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
        "ffn": ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"],
        "attention": ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                      "self_attn.o_proj"],
        "qv": ["self_attn.q_proj", "self_attn.v_proj"],
    }),
}  # fmt: skip
# The blocks each layer spec keeps out of 4.
SPEC_BLOCKS = {
    "all": [0, 1, 2, 3], "every-2": [1, 3], "top-1/2": [2, 3], "top-1/4": [3], "top-1": [3],
    "top-3": [1, 2, 3], "every-3": [0, 3], "0,2": [0, 2], "3": [3],
}  # fmt: skip


@pytest.fixture(scope="module")
def deep_models(tmp_path_factory):
    """Tiny BERT, GPT-2 and LLaMA with 4 blocks (conftest's tiny configs, deeper)."""
    from conftest import _tokenizer, tiny_config
    from transformers import AutoModel

    folders = {}
    tokenizer = _tokenizer()
    for kind in LAYOUT:
        config = tiny_config(kind, len(tokenizer))
        setattr(config, "n_layer" if kind == "gpt2" else "num_hidden_layers", BLOCKS)
        torch.manual_seed(0)
        folder = tmp_path_factory.mktemp(f"deep-{kind}")
        AutoModel.from_config(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[kind] = folder
    return folders


def _expected(kind: str, targets: str, layers: str) -> list[str]:
    prefix, groups = LAYOUT[kind]
    names = [f"{prefix}.{b}.{p}" for b in SPEC_BLOCKS[layers] for p in groups[targets]]
    if (kind, targets, layers) == ("bert", "all", "all"):
        names.append("bert.pooler.dense")  # in no block: only "all" layers keep it
    return names


# --- (a) roles, groups and layer specs ------------------------------------------------------------


def test_roles_of_each_family():
    assert role("bert.encoder.layer.0.attention.self.query") == {"q"}
    assert role("roberta.encoder.layer.0.attention.output.dense") == {"o"}
    assert role("bert.encoder.layer.0.intermediate.dense") == {"ffn_in"}
    assert role("bert.encoder.layer.0.output.dense") == {"ffn_out"}
    assert role("bert.pooler.dense") == set()
    assert role("transformer.h.0.attn.c_attn") == {"q", "k", "v"}
    assert role("transformer.h.0.attn.c_proj") == {"o"}
    assert role("transformer.h.0.mlp.c_proj") == {"ffn_out"}
    assert role("model.layers.0.mlp.gate_proj") == role("model.layers.0.mlp.up_proj") == {"ffn_in"}
    assert role("distilbert.transformer.layer.0.attention.out_lin") == {"o"}
    assert role("distilbert.transformer.layer.0.ffn.lin1") == {"ffn_in"}
    assert role("transformer.encoder.block.0.layer.1.DenseReluDense.wo") == {"ffn_out"}
    assert role("transformer.decoder.block.0.layer.1.EncDecAttention.k") == {"k"}


def test_groups_run_from_most_to_fewest_parameters():
    assert list(TARGET_GROUPS) == ["all", "ffn", "attention", "qv"]
    assert LAYER_CHOICES == ("all", "every-2", "top-1/2", "top-1/4", "top-1")


@pytest.mark.parametrize("kind", list(LAYOUT))
def test_every_group_and_layer_spec_places_exact_modules(deep_models, kind):
    loaded = load_model(str(deep_models[kind]), ["neg", "pos"])
    for targets in TARGET_GROUPS:
        for layers in SPEC_BLOCKS:
            placed = place(loaded.target_modules, targets, layers)
            assert placed == _expected(kind, targets, layers), (targets, layers)


def test_t5_stacks_are_numbered_one_after_the_other():
    names = [
        f"transformer.{stack}.block.{b}.layer.0.SelfAttention.{p}"
        for stack in ("encoder", "decoder") for b in range(2) for p in "qkvo"
    ]  # fmt: skip
    assert place(names, "qv", "top-1") == [
        "transformer.decoder.block.1.layer.0.SelfAttention.q",
        "transformer.decoder.block.1.layer.0.SelfAttention.v",
    ]
    assert place(names, "qv", "0") == [names[0], names[2]]


@pytest.mark.parametrize(
    ("targets", "layers", "message"),
    [
        ("qv", "top-5", "layers 'top-5' asks for 5 blocks; the model has 4"),
        ("all", "0,4", "block 4 does not exist; the model has 4 (0 to 3)"),
        ("heads", "all", "unknown targets 'heads'; use one of all, ffn, attention, qv"),
        ("all", "top-x", "bad layers 'top-x'"),
        ("all", "top-0", "bad layers 'top-0'"),
        ("all", "1,1", "repeats a block index"),
    ],
)
def test_bad_placement_is_one_line(deep_models, targets, layers, message):
    loaded = load_model(str(deep_models["gpt2"]), ["neg", "pos"])
    with pytest.raises(LorasearchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        place(loaded.target_modules, targets, layers)


def test_a_group_absent_from_the_modules_says_what_exists():
    with pytest.raises(
        LorasearchError, match=r"targets 'qv' matches none .*roles present: ffn_in, ffn_out"
    ):
        place(["m.layers.0.mlp.up_proj", "m.layers.0.mlp.down_proj"], "qv")
    with pytest.raises(LorasearchError, match="in no numbered block"):
        place(["bert.pooler.dense"], "all", "top-1")


def test_config_validates_the_specs_without_a_model():
    for variant in VARIANTS:
        with pytest.raises(LorasearchError, match="bad layers 'every-0'"):
            build_adapter(variant, layers="every-0")
        with pytest.raises(LorasearchError, match="unknown targets 'mlp'"):
            build_adapter(variant, targets="mlp")
        assert (
            build_adapter(variant, targets="qv", layers="0,2").hyperparameters()["layers"] == "0,2"
        )


# --- (b) counts: every variant × group × layer spec, against closed forms ------------------------

RANK, VERA_RANK, ADA_INIT = 2, 4, 3
KNOBS = {
    "vera": {"vera_rank": VERA_RANK},
    "adalora": {"target_rank": 2, "init_rank": ADA_INIT},
}


def _per_module(variant: str, d_in: int, d_out: int) -> int:
    """Trained adapter numbers of one module (../shared/docs/variants.md); LoRA-drop's plan is
    its upper bound, every module keeping its own LoRA."""
    lora = RANK * (d_in + d_out)
    return {
        "lora": lora, "lora_plus": lora, "lora_drop": lora, "delta_lora": lora,
        "lora_fa": RANK * d_out, "dora": lora + d_out, "vera": VERA_RANK + d_out,
        "adalora": ADA_INIT * (d_in + d_out) + ADA_INIT,
    }[variant]  # fmt: skip


def _shape(model, name: str) -> tuple[int, int]:
    """(d_in, d_out) of a projection; GPT-2's Conv1D stores its weight as (d_in, d_out)."""
    module = model.get_submodule(name)
    d0, d1 = module.weight.shape
    return (d0, d1) if type(module).__name__ == "Conv1D" else (d1, d0)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("kind", list(LAYOUT))
def test_planned_counts_match_closed_form_for_every_placement(deep_models, toy_data, kind, variant):
    data = DataConfig(data=str(toy_data), text_column="sentence")
    model = ModelConfig(model=str(deep_models[kind]))
    _, loaded = load_inputs(data, model)
    head = sum(p.numel() for name in loaded.head_modules
               for p in loaded.model.get_submodule(name).parameters())  # fmt: skip
    for targets in TARGET_GROUPS:
        for layers in LAYER_CHOICES:
            knobs = KNOBS.get(variant, {"rank": RANK}) | {"targets": targets, "layers": layers}
            trial = Trial(data, model, build_adapter(variant, **knobs), TrainConfig(steps=40))
            shapes = [_shape(loaded.model, n) for n in _expected(kind, targets, layers)]
            counts = planned_counts(trial)
            expected = sum(_per_module(variant, d_in, d_out) for d_in, d_out in shapes)
            assert (counts.adapter, counts.head) == (expected, head), (targets, layers)
            if variant == "delta_lora":  # the moved weights of the placed modules only
                moved = sum(d_in * d_out for d_in, d_out in shapes)
                assert counts.stored == expected + moved + head
            if variant == "lora_fa":
                assert counts.stored == sum(RANK * (i + o) for i, o in shapes) + head


# --- (c) exports with a layer subset reload to the same logits ------------------------------------


@pytest.mark.parametrize("variant", ["lora", "vera", "dora", "delta_lora"])
def test_export_with_a_layer_subset_reloads_to_the_same_logits(
    deep_models, toy_data, tmp_path, variant
):
    from transformers import AutoModelForSequenceClassification

    knobs = {"lr": 1e-2, "targets": "attention", "layers": "every-2"} | KNOBS.get(variant, {})
    data = DataConfig(data=str(toy_data), text_column="sentence")
    task, loaded = load_inputs(data, ModelConfig(model=str(deep_models["bert"])))
    config = TrainConfig(steps=12, batch_size=16, max_length=24, eval_every=6)
    splits = tokenize_task(task, loaded.tokenizer, config.max_length)
    adapter = build_adapter(variant, **knobs)
    train(loaded, adapter, task, splits, config, export_dir=tmp_path)

    placed = _expected("bert", "attention", "every-2")
    meta = json.loads((tmp_path / "lorasearch.json").read_text())
    assert meta["adapted_modules"] == placed
    assert meta["target_modules"] == loaded.target_modules and len(meta["target_modules"]) == 25
    peft_config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert sorted(peft_config["target_modules"]) == sorted(placed)

    ids = torch.randint(1000, 2000, (4, 9), generator=torch.Generator().manual_seed(3))
    trained = loaded.model.eval()  # the injected model, the best-on-dev weights loaded back
    base = AutoModelForSequenceClassification.from_pretrained(deep_models["bert"], num_labels=2)
    reloaded = VARIANTS[variant].load_export(base, tmp_path).eval()
    with torch.no_grad():
        expected, got = trained(input_ids=ids).logits, reloaded(input_ids=ids).logits
    assert torch.equal(got, expected)
    adapted = {n.rsplit(".base_layer", 1)[0] for n, _ in reloaded.named_modules()
               if n.endswith(".base_layer")}  # fmt: skip
    assert sorted(a.removeprefix("base_model.model.") for a in adapted) == sorted(placed)


def test_lora_drop_scores_and_drops_among_the_placed_modules_only(deep_models, toy_data):
    data = DataConfig(data=str(toy_data), text_column="sentence")
    task, loaded = load_inputs(data, ModelConfig(model=str(deep_models["llama"])))
    config = TrainConfig(steps=6, batch_size=16, max_length=24, eval_every=6)
    splits = tokenize_task(task, loaded.tokenizer, config.max_length)
    adapter = build_adapter(
        "lora_drop", rank=2, targets="ffn", layers="top-1/2", drop_steps=3, drop_threshold=0.5
    )
    result = train(loaded, adapter, task, splits, config)
    placed = _expected("llama", "ffn", "top-1/2")
    assert sorted(result.adapter_details["importance"]) == sorted(placed)
    kept = result.adapter_details["kept_modules"]
    assert kept and set(kept) < set(placed)
    assert result.trainable_params < planned_counts(Trial(data, ModelConfig(
        model=str(deep_models["llama"])), adapter, config)).trainable  # fmt: skip


# --- (d) the command line -------------------------------------------------------------------------

FAST = ["--steps", "12", "--batch-size", "8", "--max-length", "16", "--eval-every", "6"]


def test_train_targets_group_and_layers_are_recorded(capsys, tiny_bert, toy_data, tmp_path):
    args = ["--data", str(toy_data), "--text-column", "sentence", "--model", str(tiny_bert)]
    code = main(["train", *args, *FAST, "--targets", "qv", "--layers", "top-1", "--rank", "2",
                 "--export", str(tmp_path), "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["hyperparameters"]["targets"] == "qv"
    assert result["hyperparameters"]["layers"] == "top-1"
    assert result["adapter_params"] == 2 * 2 * (32 + 32)  # query and value of block 1, rank 2
    meta = json.loads((tmp_path / "lorasearch.json").read_text())
    assert meta["adapted_modules"] == [
        "bert.encoder.layer.1.attention.self.query", "bert.encoder.layer.1.attention.self.value",
    ]  # fmt: skip
    assert len(meta["target_modules"]) == 13  # the model-level list stays detected


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--layers", "top-9"], "layers 'top-9' asks for 9 blocks; the model has 2"),
        (["--layers", "top-"], "bad layers 'top-'"),
        (["--targets", "qv", "--set", "targets=ffn"], "--targets qv and the knob targets=ffn"),
    ],
)
def test_bad_placement_on_the_command_line_is_one_line_exit_2(
    capsys, tiny_bert, toy_data, extra, message
):
    args = ["--data", str(toy_data), "--text-column", "sentence", "--model", str(tiny_bert)]
    assert main(["train", *args, *FAST, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_variants_json_lists_the_placement_choices(capsys):
    assert main(["variants", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    for name in VARIANTS:
        assert listed[name]["targets"] == ["all", "ffn", "attention", "qv"]
        assert listed[name]["layers"] == list(LAYER_CHOICES)
        assert listed[name]["knobs"]["targets"] == listed[name]["knobs"]["layers"] == "all"


# --- (e) the search draws where to adapt --------------------------------------------------------


def test_search_draws_placement_and_meets_a_small_budget(
    capsys, tiny_bert, toy_data, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "space.toml").write_text("[lora]\nrank = 2\n")
    args = ["--data", str(toy_data), "--text-column", "sentence", "--model", str(tiny_bert),
            "--steps", "6", "--eval-every", "3", "--batch-size", "16", "--max-length", "16",
            "--variants", "lora", "--space", "space.toml", "--no-fidelity", "--no-early-stop",
            "--no-tracking", "--sampler", "random"]  # fmt: skip
    # Below the smallest configuration (rank 2 on query and value of the top block: 2·2·64 +
    # the head's 66 = 322): refused before any trial.
    assert main(["search", *args, "--trials", "1", "--max-params", "321"]) == 2
    assert "(lora at its lowest knobs: 322 trainable params)" in capsys.readouterr().err

    assert main(["search", *args, "--trials", "6", "--max-params", "700", "--json"]) == 0
    trials = json.loads(capsys.readouterr().out)["trials"]
    drawn = {(t["params"]["targets"], t["params"]["layers"]) for t in trials}
    assert len(drawn) > 1 and all(t in TARGET_GROUPS and s in LAYER_CHOICES for t, s in drawn)
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert complete and all(t["values"][1] <= 700 for t in complete)
    base = load_model(str(tiny_bert), ["neg", "pos"])
    for trial in complete:  # the recorded count is the placed configuration's
        placed = place(base.target_modules, trial["params"]["targets"], trial["params"]["layers"])
        shapes = [_shape(base.model, name) for name in placed]
        assert trial["values"][1] == sum(2 * (d_in + d_out) for d_in, d_out in shapes) + 66


def test_fixed_placement_reaches_every_variant_and_round_trips_for_workers():
    import optuna

    from lorasearch import _options as opts
    from lorasearch.search.config import Fixed
    from lorasearch.spaces import SearchSpace

    options = opts.with_defaults("optimize", {"targets": "qv", "layers": "top-1"})
    space = SearchSpace.from_json(opts.fix_placement(SearchSpace.default(), options).to_json())
    study = optuna.create_study(directions=["maximize", "minimize"])
    for variant in VARIANTS:
        assert space.knobs[variant]["targets"].fixed == "qv"
        assert space.knobs[variant]["layers"].fixed == "top-1"
        _, knobs = SearchSpace({variant: space.knobs[variant]}).suggest(study.ask(), 100)
        assert (knobs["targets"], knobs["layers"]) == ("qv", "top-1")
    # A group fixes the knob; the model-level list stays detected (None), module names stay.
    fixed = Fixed(*opts.configs("sst2", None, None, 10, options))
    assert fixed.model.targets is None and Fixed.from_json(fixed.to_json()) == fixed
    names = opts.with_defaults("optimize", {"targets": "query,value"})
    assert opts.configs("sst2", None, None, 10, names)[1].targets == ("query", "value")
    assert opts.placement_knobs(names) == {}


def test_a_space_drawing_a_placement_the_model_lacks_is_refused_up_front():
    from lorasearch.spaces import SearchSpace

    up_down = ["m.layers.0.mlp.up_proj", "m.layers.0.mlp.down_proj"]
    SearchSpace.default(["lora"]).override({"lora": {"targets": "ffn"}}).check_placement(up_down)
    with pytest.raises(
        LorasearchError, match="search space for lora: targets 'attention' matches none"
    ):
        SearchSpace.default(["lora"]).check_placement(up_down)

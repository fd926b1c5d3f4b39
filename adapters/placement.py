"""Where to adapt: which projections (``targets``) in which transformer blocks (``layers``).

Every adaptable projection the model loader found (``LoadedModel.target_modules``) gets a role
from its name: q, k, v, o (attention), ffn_in, ffn_out (feed-forward); GPT-2's fused ``c_attn``
is q, k and v at once, BERT's pooler has none. A target group keeps the projections with one of
its roles; a layer spec keeps the projections of some blocks. :func:`place` applies both; the
adapter's config carries the two specs (``targets``, ``layers``) and the search draws them.

Blocks are numbered in model order from 0: a block is a module path up to its first integer
component (``bert.encoder.layer.3``, ``transformer.h.3``, ``model.layers.3``), so an
encoder-decoder's two stacks are numbered one after the other. A layer spec other than ``all``
keeps only projections inside blocks (BERT's pooler is in none).
"""

from __future__ import annotations

import math
import re

from lorasearch.errors import LorasearchError

# Role of a projection by its last name component; "dense" and "c_proj" need their parent.
SUFFIX_ROLES: dict[str, frozenset[str]] = {
    **dict.fromkeys(("query", "q_proj", "q_lin", "q"), frozenset({"q"})),
    **dict.fromkeys(("key", "k_proj", "k_lin", "k"), frozenset({"k"})),
    **dict.fromkeys(("value", "v_proj", "v_lin", "v"), frozenset({"v"})),
    **dict.fromkeys(("o_proj", "out_lin", "o"), frozenset({"o"})),
    "c_attn": frozenset({"q", "k", "v"}),  # GPT-2: one fused projection
    **dict.fromkeys(
        ("gate_proj", "up_proj", "c_fc", "lin1", "wi", "wi_0", "wi_1"), frozenset({"ffn_in"})
    ),
    **dict.fromkeys(("down_proj", "lin2", "wo"), frozenset({"ffn_out"})),
}

ATTENTION = frozenset({"q", "k", "v", "o"})
FFN = frozenset({"ffn_in", "ffn_out"})

# Target groups, from most to fewest adapter parameters (SearchSpace.smallest takes the last).
# LoRA's r·(d_in + d_out) per module on MiniLM (hidden 384, FFN 1536): attention 4·768 = 3072·r,
# FFN 2·1920 = 3840·r, so "ffn" comes before "attention"; GPT-2 (768, 3072: 4608·r vs 7680·r)
# and LLaMA (gate, up, down at ~2.7× hidden) order the same way. None: every projection found.
TARGET_GROUPS: dict[str, frozenset[str] | None] = {
    "all": None,
    "ffn": FFN,
    "attention": ATTENTION,
    "qv": frozenset({"q", "v"}),
}

# Layer specs the search draws, most to fewest blocks (on 6 blocks: 6, 3, 3, 2, 1).
LAYER_CHOICES = ("all", "every-2", "top-1/2", "top-1/4", "top-1")

LAYER_SPEC_HELP = "all, top-K, top-1/N, every-N or block indices like 0,2,5"
_TOP = re.compile(r"top-(\d+)")
_TOP_FRACTION = re.compile(r"top-1/(\d+)")
_EVERY = re.compile(r"every-(\d+)")
_INDICES = re.compile(r"\d+(,\d+)*")


def role(module_name: str) -> frozenset[str]:
    """The roles of the projection named ``module_name`` (empty: none, e.g. BERT's pooler)."""
    parts = module_name.split(".")
    suffix, parent = parts[-1], parts[-2] if len(parts) > 1 else ""
    if suffix == "dense":  # BERT/RoBERTa: attention.output.dense, intermediate.dense, output.dense
        if parent == "intermediate":
            return frozenset({"ffn_in"})
        if parent == "output":
            grand = parts[-3] if len(parts) > 2 else ""
            return frozenset({"o"}) if "attention" in grand else frozenset({"ffn_out"})
        return frozenset()
    if suffix == "c_proj":  # GPT-2: attn.c_proj is o, mlp.c_proj is ffn_out
        return frozenset({"o"}) if "attn" in parent else frozenset({"ffn_out"})
    return SUFFIX_ROLES.get(suffix, frozenset())


def block_of(module_name: str) -> str | None:
    """The module's block: its path up to the first integer component (None: in no block)."""
    parts = module_name.split(".")
    for index, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: index + 1])
    return None


def check_targets(targets: str) -> None:
    """A user error unless ``targets`` names a target group."""
    if not isinstance(targets, str) or targets not in TARGET_GROUPS:
        raise LorasearchError(f"unknown targets '{targets}'; use one of {', '.join(TARGET_GROUPS)}")


def normalize_layers(layers):
    """A layer spec as written: one block index may come as an int (a space file), and spaces
    inside a list do not count ("0, 2" is "0,2")."""
    if isinstance(layers, int) and not isinstance(layers, bool):
        return str(layers)
    return layers.replace(" ", "") if isinstance(layers, str) else layers


def check_layers(layers: str) -> None:
    """A user error unless ``layers`` is a well-formed layer spec (the model is not needed)."""
    if not isinstance(layers, str):
        raise LorasearchError(f"layers must be a string ({LAYER_SPEC_HELP}), got {layers!r}")
    spec = layers.replace(" ", "")
    counts = [m.group(1) for m in (_TOP.fullmatch(spec), _TOP_FRACTION.fullmatch(spec),
                                   _EVERY.fullmatch(spec)) if m]  # fmt: skip
    if spec == "all" or (counts and int(counts[0]) >= 1):
        return
    if _INDICES.fullmatch(spec):
        indices = spec.split(",")
        if len(set(map(int, indices))) == len(indices):
            return
        raise LorasearchError(f"layers '{layers}' repeats a block index")
    raise LorasearchError(f"bad layers '{layers}'; use {LAYER_SPEC_HELP}")


def chosen_blocks(layers: str, count: int) -> list[int]:
    """Indices (ascending) of the blocks ``layers`` keeps out of ``count`` blocks."""
    check_layers(layers)
    spec = layers.replace(" ", "")
    if spec == "all":
        return list(range(count))
    if count == 0:
        raise LorasearchError(f"layers '{layers}': the adapted modules are in no numbered block")
    if match := _TOP_FRACTION.fullmatch(spec):
        keep = max(1, math.ceil(count / int(match.group(1))))
        return list(range(count - keep, count))
    if match := _TOP.fullmatch(spec):
        keep = int(match.group(1))
        if keep > count:
            raise LorasearchError(
                f"layers '{layers}' asks for {keep} blocks; the model has {count}"
            )
        return list(range(count - keep, count))
    if match := _EVERY.fullmatch(spec):
        return sorted(range(count - 1, -1, -int(match.group(1))))
    indices = sorted(int(i) for i in spec.split(","))
    if indices[-1] >= count:
        raise LorasearchError(
            f"layers '{layers}': block {indices[-1]} does not exist; the model has {count} "
            f"(0 to {count - 1})"
        )
    return indices


def place(candidates: list[str], targets: str = "all", layers: str = "all") -> list[str]:
    """The projections of ``candidates`` (full module names, model order) that ``targets`` and
    ``layers`` keep, in model order; an empty result is the user's error."""
    check_targets(targets)
    layers = normalize_layers(layers)
    check_layers(layers)
    wanted = TARGET_GROUPS[targets]
    kept = [name for name in candidates if wanted is None or role(name) & wanted]
    if not kept:
        present = sorted(set().union(*(role(name) for name in candidates))) or ["none"]
        raise LorasearchError(
            f"targets '{targets}' matches none of the adaptable modules (roles present: "
            f"{', '.join(present)})"
        )
    if layers == "all":
        return kept
    blocks = list(dict.fromkeys(b for b in map(block_of, candidates) if b is not None))
    chosen = {blocks[i] for i in chosen_blocks(layers, len(blocks))}
    placed = [name for name in kept if block_of(name) in chosen]
    if not placed:
        raise LorasearchError(
            f"targets '{targets}' with layers '{layers}' leaves no module to adapt"
        )
    return placed

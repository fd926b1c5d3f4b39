"""Adapter variants behind one interface, and the registry that maps names to them.

A variant is one class (see ``adapters.base``); ``register`` makes it searchable, trainable and
exportable by its ``name``. Everything else (the search space, the CLI, the model card) reads the
registry when it runs, so a variant registered later, even from a notebook, is found too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from lorasearch.adapters.adalora import AdaLoraAdapter
from lorasearch.adapters.base import Adapter, AdapterConfig, InjectContext, ParamCounts
from lorasearch.adapters.delta_lora import DeltaLoraAdapter, load_delta_lora
from lorasearch.adapters.dora import DoraAdapter
from lorasearch.adapters.knobs import Knob
from lorasearch.adapters.lora import LoraAdapter
from lorasearch.adapters.lora_drop import LoraDropAdapter
from lorasearch.adapters.lora_fa import LoraFaAdapter
from lorasearch.adapters.lora_plus import LoraPlusAdapter
from lorasearch.adapters.peft_base import PeftAdapter
from lorasearch.adapters.placement import LAYER_CHOICES, TARGET_GROUPS, place
from lorasearch.adapters.vera import VeraAdapter
from lorasearch.errors import LorasearchError

VARIANTS: dict[str, type[Adapter]] = {}


def register(cls: type[Adapter]) -> type[Adapter]:
    """Make ``cls`` a variant under ``cls.name`` (a class decorator, or one line per variant)."""
    missing = [
        attr for attr in ("name", "description") if not isinstance(getattr(cls, attr, None), str)
    ]
    if missing:
        raise TypeError(f"{cls.__name__} cannot be registered without {' and '.join(missing)}")
    VARIANTS[cls.name] = cls
    return cls


register(LoraAdapter)
register(LoraPlusAdapter)
register(VeraAdapter)
register(LoraFaAdapter)
register(LoraDropAdapter)
register(AdaLoraAdapter)
register(DoraAdapter)
register(DeltaLoraAdapter)


def get_variant(name: str) -> type[Adapter]:
    """The adapter class registered as ``name``."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise LorasearchError(
            f"unknown variant '{name}'; available: {', '.join(VARIANTS)}"
        ) from None


def build_adapter(name: str, **knobs) -> Adapter:
    """An adapter of variant ``name`` configured by ``knobs`` (validated)."""
    return get_variant(name).from_knobs(**knobs)


def describe_variants() -> dict[str, dict[str, Any]]:
    """Each registered variant's one-line description, its knobs with their defaults, and where
    it may adapt: the ``targets`` groups and the searched ``layers`` specs (empty lists for a
    variant that is not placeable)."""
    return {
        name: {
            "description": cls.description,
            "knobs": {f.name: _default(f) for f in dataclasses.fields(cls.config_class)},
            "targets": list(TARGET_GROUPS) if cls.placeable else [],
            "layers": list(LAYER_CHOICES) if cls.placeable else [],
        }
        for name, cls in VARIANTS.items()
    }


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


__all__ = [
    "VARIANTS",
    "Adapter",
    "AdapterConfig",
    "InjectContext",
    "Knob",
    "ParamCounts",
    "PeftAdapter",
    "build_adapter",
    "describe_variants",
    "get_variant",
    "load_delta_lora",
    "place",
    "register",
]

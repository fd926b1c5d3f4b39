"""Adapter variants behind one interface, and the registry that maps names to them."""

from lorasearch.adapters.adalora import AdaLoraAdapter
from lorasearch.adapters.base import Adapter, AdapterConfig, InjectContext, ParamCounts
from lorasearch.adapters.delta_lora import DeltaLoraAdapter, load_delta_lora
from lorasearch.adapters.dora import DoraAdapter
from lorasearch.adapters.lora import LoraAdapter
from lorasearch.adapters.lora_drop import LoraDropAdapter
from lorasearch.adapters.lora_fa import LoraFaAdapter
from lorasearch.adapters.lora_plus import LoraPlusAdapter
from lorasearch.adapters.vera import VeraAdapter
from lorasearch.errors import LorasearchError

VARIANTS: dict[str, type[Adapter]] = {
    cls.name: cls
    for cls in (
        LoraAdapter,
        LoraPlusAdapter,
        VeraAdapter,
        LoraFaAdapter,
        LoraDropAdapter,
        AdaLoraAdapter,
        DoraAdapter,
        DeltaLoraAdapter,
    )
}


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


__all__ = [
    "VARIANTS",
    "Adapter",
    "AdapterConfig",
    "InjectContext",
    "ParamCounts",
    "build_adapter",
    "get_variant",
    "load_delta_lora",
]

"""DoRA [Liu et al. 2024]: W' = m · (W₀ + sBA) / ‖W₀ + sBA‖, m trained — PEFT's ``use_dora``."""

from __future__ import annotations

from lorasearch.adapters.lora import LoraAdapter


class DoraAdapter(LoraAdapter):
    name = "dora"
    description = (
        "DoRA [Liu et al. 2024]: W' = m · (W₀ + sBA) / ‖W₀ + sBA‖, m trained — PEFT's use_dora."
    )

    def peft_overrides(self) -> dict:
        return {"use_dora": True}

"""An exported adapter loaded for inference: base model + adapter, tokenizer and label names."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorasearch.errors import LorasearchError, first_line


@dataclass
class LoadedAdapter:
    """A model ready to classify text the way it was trained (same labels, same max length)."""

    model: Any  # the base model with the adapter on it, in eval mode
    tokenizer: Any
    label_names: list[str]
    max_length: int
    metadata: dict[str, Any] = field(repr=False)  # the export's lorasearch.json

    def predict(
        self, texts: list[str], pairs: list[str] | None = None, batch_size: int = 64
    ) -> list[str]:
        """The predicted label name of each text (of each ``(text, pair)`` for pair tasks)."""
        import torch

        if isinstance(texts, str):
            raise TypeError("predict takes a list of texts")
        if pairs is not None and len(pairs) != len(texts):
            raise LorasearchError(f"{len(texts)} texts but {len(pairs)} pairs")
        device = next(self.model.parameters()).device
        predicted: list[int] = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                chunk = [list(texts[start : start + batch_size])]
                if pairs is not None:
                    chunk.append(list(pairs[start : start + batch_size]))
                batch = self.tokenizer(
                    *chunk, truncation=True, max_length=self.max_length, padding=True,
                    return_tensors="pt",
                )  # fmt: skip
                logits = self.model(**{k: v.to(device) for k, v in batch.items()}).logits
                predicted += logits.argmax(-1).tolist()
        return [self.label_names[i] for i in predicted]


def load(directory: str | Path, device: str = "auto", trust_remote_code: bool = False):
    """The export in ``directory`` (from ``train(export_dir=...)`` or ``pick(export_dir=...)``)
    on its base model, loaded the way its variant exports (``load_export``)."""
    from lorasearch.adapters import get_variant
    from lorasearch.training.models import load_model
    from lorasearch.training.trainer import resolve_device

    directory = Path(directory)
    meta_file = directory / "lorasearch.json"
    if not meta_file.is_file():
        raise LorasearchError(f"{directory} is not a lorasearch export (no lorasearch.json)")
    meta = json.loads(meta_file.read_text())
    loaded = load_model(
        meta["base_model"], meta["label_names"], targets=meta.get("target_modules"),
        trust_remote_code=trust_remote_code,
    )  # fmt: skip
    try:
        model = get_variant(meta["variant"]).load_export(loaded.model, directory)
    except (OSError, ValueError) as exc:
        raise LorasearchError(
            f"cannot load the adapter in {directory}: {first_line(exc)}"
        ) from None
    model.to(resolve_device(device)).eval()
    return LoadedAdapter(
        model=model,
        tokenizer=loaded.tokenizer,
        label_names=list(meta["label_names"]),
        max_length=meta.get("max_length", 512),
        metadata=meta,
    )

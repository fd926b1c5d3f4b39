"""An exported adapter loaded for inference: base model + adapter, tokenizer and label names."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorasearch.errors import LorasearchError, first_line

EVAL_BATCH_SIZE = 128  # what training scores dev and test with (TrainConfig.eval_batch_size)


@dataclass
class LoadedAdapter:
    """A model ready to classify text the way it was trained (same labels, same max length)."""

    model: Any  # the base model with the adapter on it, in eval mode
    tokenizer: Any
    label_names: list[str]
    max_length: int
    metadata: dict[str, Any] = field(repr=False)  # the export's lorasearch.json

    @property
    def pair_task(self) -> bool:
        """Whether the adapter was trained on sentence pairs (it then needs ``pairs``)."""
        return bool(self.metadata.get("text_pair_column"))

    def predict(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        batch_size: int = EVAL_BATCH_SIZE,
    ) -> list[str]:
        """The predicted label name of each text (of each ``(text, pair)`` for pair tasks)."""
        predicted, _ = self.scores(texts, pairs, batch_size)
        return [self.label_names[i] for i in predicted]

    def predict_proba(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        batch_size: int = EVAL_BATCH_SIZE,
    ) -> list[list[float]]:
        """Each text's class probabilities (softmax), in the order of ``label_names``."""
        return self.scores(texts, pairs, batch_size)[1]

    def scores(
        self,
        texts: Sequence[str],
        pairs: Sequence[str] | None = None,
        batch_size: int = EVAL_BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[list[int], list[list[float]]]:
        """``(label ids, probabilities)`` of each text, scored as training scores test: tokenized
        unpadded, batched by token length (padded on the tokenizer's side, bf16 autocast on
        CUDA), returned in the input's order; ``progress(done)`` is called after each batch."""
        import torch

        from lorasearch.training.data import TokenizedSplit, collate, eval_batches
        from lorasearch.training.trainer import _autocast

        texts, pairs = self._checked(texts, pairs, batch_size)
        if not texts:
            return [], []
        encoded = self.tokenizer(
            texts, pairs, truncation=True, max_length=self.max_length, padding=False,
            return_attention_mask=False,
        )  # fmt: skip
        split = TokenizedSplit(
            encoded["input_ids"], encoded.get("token_type_ids"), [0] * len(texts)
        )
        pad_id = self.tokenizer.pad_token_id
        pad_left = getattr(self.tokenizer, "padding_side", "right") == "left"
        device = next(self.model.parameters()).device
        autocast = _autocast(device)  # as training evaluates
        predicted = torch.empty(len(texts), dtype=torch.long)
        probabilities = torch.empty((len(texts), len(self.label_names)), dtype=torch.float32)
        done = 0
        # The adapter stays unmerged: merge_and_unload was 16% faster on CPU (MiniLM LoRA r=8,
        # sst2/test 872 rows, 1 thread: 10.5 -> 8.9 s) but moved probabilities by up to 6e-7 off
        # training's unmerged forward, where a near-tie may flip; as it is, the same batches
        # (lengths sorted stably, default batch = eval_batch_size) give the recorded test metric
        # exactly (tests/test_real.py). Length order is already the bulk of the speed: SST-2
        # test at batch 128 pads 13% of tokens, in input order 52% (bench/predict_throughput.py).
        with torch.inference_mode(), autocast:
            for indices in eval_batches(split.lengths, batch_size):
                batch = collate(split, indices, pad_id, pad_left)
                del batch["labels"]
                logits = self.model(**{k: v.to(device) for k, v in batch.items()}).logits
                predicted[indices] = logits.argmax(dim=-1).cpu()
                probabilities[indices] = torch.softmax(logits.float(), dim=-1).cpu()
                done += len(indices)
                if progress is not None:
                    progress(done)
        return predicted.tolist(), probabilities.tolist()

    def _checked(self, texts, pairs, batch_size: int) -> tuple[list[str], list[str] | None]:
        if isinstance(texts, str) or isinstance(pairs, str):
            raise TypeError("predict takes a list of texts (and a list of pairs)")
        if batch_size < 1:
            raise LorasearchError(f"batch size must be at least 1, got {batch_size}")
        if pairs is None and self.pair_task:
            raise LorasearchError(
                "this adapter was trained on sentence pairs "
                f"('{self.metadata['text_column']}', '{self.metadata['text_pair_column']}'): "
                "give the second text of each pair too"
            )
        if pairs is not None and not self.pair_task:
            raise LorasearchError("this adapter was trained on single texts, not sentence pairs")
        texts = [str(t) for t in texts]
        if pairs is not None:
            pairs = [str(p) for p in pairs]
            if len(pairs) != len(texts):
                raise LorasearchError(f"{len(texts)} texts but {len(pairs)} pairs")
        return texts, pairs


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """The export's ``lorasearch.json``, checked to be one (a user error otherwise)."""
    directory = Path(directory)
    if not directory.exists():
        raise LorasearchError(f"adapter folder {directory} not found")
    meta_file = directory / "lorasearch.json"
    if not meta_file.is_file():
        raise LorasearchError(f"{directory} is not a lorasearch export (no lorasearch.json)")
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as exc:
        raise LorasearchError(f"cannot read {meta_file}: {first_line(exc)}") from None
    if not isinstance(meta, dict):
        meta = {}
    missing = [key for key in ("variant", "label_names") if key not in meta]
    if missing:
        raise LorasearchError(f"{meta_file} has no '{missing[0]}': not a lorasearch export's")
    return meta


def load(directory: str | Path, device: str = "auto", trust_remote_code: bool = False):
    """The export in ``directory`` (from ``train(export_dir=...)`` or ``pick(export_dir=...)``)
    on its base model, loaded the way its variant exports (``load_export``)."""
    from lorasearch.adapters import get_variant
    from lorasearch.training.models import export_base, load_model
    from lorasearch.training.trainer import resolve_device

    directory = Path(directory)
    meta = read_metadata(directory)
    target = resolve_device(device)
    loaded = load_model(
        export_base(meta), meta["label_names"], targets=meta.get("target_modules"),
        trust_remote_code=trust_remote_code,
    )  # fmt: skip
    try:
        model = get_variant(meta["variant"]).load_export(loaded.model, directory)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise LorasearchError(
            f"cannot load the adapter in {directory}: {first_line(exc)}"
        ) from None
    model.to(target).eval()
    return LoadedAdapter(
        model=model,
        tokenizer=loaded.tokenizer,
        label_names=list(meta["label_names"]),
        max_length=meta.get("max_length", 512),
        metadata=meta,
    )

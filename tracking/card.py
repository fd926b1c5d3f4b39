"""The model card written beside an exported adapter: what it is, how good, how to load it."""

from __future__ import annotations

import json
from pathlib import Path

from lorasearch.adapters import VARIANTS, Adapter


def write_model_card(directory: Path, *, study: str, trial: int, why: str) -> Path:
    """``README.md`` from the export's ``lorasearch.json`` sidecar plus where it came from."""
    meta = json.loads((directory / "lorasearch.json").read_text())
    metric = meta["metric_name"]
    knobs = "\n".join(f"| `{k}` | {v} |" for k, v in sorted(meta["hyperparameters"].items()))
    load = VARIANTS.get(meta["variant"], Adapter).load_code  # unregistered: PEFT's loader
    labels = ", ".join(f"{i} = `{name}`" for i, name in enumerate(meta["label_names"]))
    pair = f", pair column `{meta['text_pair_column']}`" if meta.get("text_pair_column") else ""
    text = f"""# {meta["variant"]} adapter for {meta.get("task") or "a custom task"}

Chosen by lorasearch from study `{study}`, trial {trial}: {why}.

| | |
|---|---|
| base model | `{meta["base_model"]}` |
| task | {meta.get("task") or "custom"} (text column `{meta["text_column"]}`{pair}) |
| dev {metric} | {meta["dev_metric"]:.4f} |
| test {metric} | {meta["test_metric"]:.4f} |
| trainable params (adapter + head) | {meta["trainable_params"]:,} |
| stored params (this folder) | {meta["stored_params"]:,} |
| labels | {labels} |

## Hyperparameters

| knob | value |
|---|---|
{knobs}

## Load it

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer

ADAPTER_DIR = "{directory.name}"
base = AutoModelForSequenceClassification.from_pretrained(
    "{meta["base_model"]}", num_labels={len(meta["label_names"])}
)
tokenizer = AutoTokenizer.from_pretrained("{meta["base_model"]}")
{load}
model.eval()
inputs = tokenizer(["some text"], truncation=True, max_length={meta.get("max_length", 512)},
                   padding=True, return_tensors="pt")
label = {json.dumps(meta["id2label"])}[str(int(model(**inputs).logits.argmax(-1)[0]))]
```

`lorasearch.json` holds the same facts for programs, with the label mapping (`id2label`).
"""
    path = directory / "README.md"
    path.write_text(text)
    return path

"""Score an exported adapter the way a user would, in a fresh process, with PEFT and no lorasearch
training code: ``python score_export.py EXPORT_DIR TEST_FILE TEXT_COLUMN LABEL_COLUMN``.

Prints the accuracy on TEST_FILE (TSV) as one number.
"""

import csv
import json
import sys
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def main(export_dir: str, test_file: str, text_column: str, label_column: str) -> None:
    meta = json.loads((Path(export_dir) / "lorasearch.json").read_text())
    names = meta["label_names"]
    base = AutoModelForSequenceClassification.from_pretrained(
        meta["base_model"], num_labels=len(names)
    )
    tokenizer = AutoTokenizer.from_pretrained(meta["base_model"])
    model = PeftModel.from_pretrained(base, export_dir).eval()
    with open(test_file, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    texts = [r[text_column] for r in rows]
    # Labels may be stored as names or as ids of the sorted names; the export's mapping decides.
    gold = [
        names.index(r[label_column]) if r[label_column] in names else int(r[label_column])
        for r in rows
    ]
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            batch = tokenizer(
                texts[start : start + 64],
                truncation=True,
                max_length=meta["max_length"],
                padding=True,
                return_tensors="pt",
            )
            predicted = model(**batch).logits.argmax(-1).tolist()
            correct += sum(p == g for p, g in zip(predicted, gold[start : start + 64], strict=True))
    print(correct / len(texts))


if __name__ == "__main__":
    main(*sys.argv[1:5])

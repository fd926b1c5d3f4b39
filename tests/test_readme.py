"""README's "From Python" section runs as written, on a tiny model and toy data.

Its ```python blocks are executed in order, in one namespace, in a scratch folder; the test only
swaps the real data folder for a toy one shaped like it, the hub model for the tiny BERT (the
bundled default model too), and shrinks the budgets (steps, trials).
"""

import re
from pathlib import Path

from conftest import toy_rows, write_tsv

README = Path(__file__).parent.parent / "README.md"


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of README's ``## section``."""
    text = README.read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], re.S)


def test_from_python_section_runs(tiny_bert, tmp_path, monkeypatch):
    data = tmp_path / "sst2"  # SST-2's shape: sentence, label 0/1, train/dev/test TSVs
    data.mkdir()
    for split, n, seed in (("train", 300, 0), ("dev", 60, 1), ("test", 60, 2)):
        write_tsv(data / f"{split}.tsv", toy_rows(n, seed, labels=("0", "1")))
    monkeypatch.setattr("lorasearch.training.models.default_model", lambda: str(tiny_bert))
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks("From Python")
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:
        code = block.replace("../shared/data/sst2", str(data))
        code = code.replace('"google-bert/bert-base-uncased"', repr(str(tiny_bert)))
        code = re.sub(r"\bsteps=\d+", "steps=6", code)
        code = re.sub(r"\btrials=\d+", "trials=2", code)
        exec(compile(code, str(README), "exec"), namespace)  # noqa: S102
    assert len(namespace["report"].trials) == 4  # searched, then resumed
    assert namespace["chosen"].export_dir == "my-adapter"
    assert (tmp_path / "my-adapter" / "README.md").is_file()
    assert namespace["result"].variant == "dora"  # the DataFrame + loaded-model run

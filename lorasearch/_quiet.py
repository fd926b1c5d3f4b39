"""Keep stderr for our own progress: silence the libraries' bars and expected warnings."""

from __future__ import annotations

import logging
import os
import warnings


def quiet_libraries() -> None:
    """Hide datasets/transformers progress bars and info logs that say nothing actionable."""
    import datasets
    import optuna
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as hf_logging

    # Our bars report each trial, a failure with its reason; Optuna would add a traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    # An unreachable Hub is retried five times over 23 s, each try two warning lines; the one
    # error line that follows names the dataset and says to pass --data.
    hub_logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    # MLflow configures its loggers when imported (later): tell it through its own settings.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
    warnings.filterwarnings("ignore", message=".*(save|load) vera_A and vera_B.*")
    warnings.filterwarnings("ignore", message=".*rank_pattern keys did not match.*")
    warnings.filterwarnings("ignore", message=".*LoRA tensor\\(s\\) have invalid shape.*")
    # PEFT warns when PiSSA/OLoRA meets a second adapter config, which its own conversion to a
    # plain LoRA does at export (adapters/lora.py): the advice it gives is what we already do.
    warnings.filterwarnings("ignore", message=".*(PiSSA|OLoRA) changes the base weights.*")

"""Tasks (data, metrics), model loading and the trainer: the path of one trial."""

from lorasearch.training.trainer import TrainConfig, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]

"""Task metrics (scikit-learn), by the names ``--metric`` accepts."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef


def _macro_f1(labels: Sequence[int], predictions: Sequence[int]) -> float:
    return float(f1_score(labels, predictions, average="macro"))


def _binary_f1(labels: Sequence[int], predictions: Sequence[int]) -> float:
    return float(f1_score(labels, predictions, average="binary" if max(labels) <= 1 else "macro"))


METRICS: dict[str, Callable[[Sequence[int], Sequence[int]], float]] = {
    "accuracy": lambda y, p: float(accuracy_score(y, p)),
    "macro_f1": _macro_f1,
    "f1": _binary_f1,
    "mcc": lambda y, p: float(matthews_corrcoef(y, p)),
}


def compute_metric(name: str, labels: Sequence[int], predictions: Sequence[int]) -> float:
    """The metric ``name`` of ``predictions`` against ``labels`` (higher is better)."""
    return METRICS[name](labels, predictions)


def chance_level(name: str, labels: Sequence[int], num_labels: int) -> float:
    """The metric a constant majority-class guess gets: the floor a trained model must beat."""
    majority = max(range(num_labels), key=list(labels).count)
    return compute_metric(name, labels, [majority] * len(labels))

"""Experiment tracking behind one protocol (MLflow, or none): runs, plots, registry, model card."""

from lorasearch.tracking.base import NoTracking, Tracking, make_tracking
from lorasearch.tracking.runs import MlflowTracking, Tracker

__all__ = ["MlflowTracking", "NoTracking", "Tracker", "Tracking", "make_tracking"]

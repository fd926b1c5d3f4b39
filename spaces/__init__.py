"""Searchable knobs: which hyperparameters each variant has, their ranges and conditions."""

from lorasearch.adapters.knobs import Knob
from lorasearch.spaces.space import SearchSpace, load_space_file

__all__ = ["Knob", "SearchSpace", "load_space_file"]

"""Searchable knobs: which hyperparameters each variant has, their ranges and conditions."""

from lorasearch.spaces.space import DEFAULT_KNOBS, Knob, SearchSpace, load_space_file

__all__ = ["DEFAULT_KNOBS", "Knob", "SearchSpace", "load_space_file"]

"""Searchable knobs: which hyperparameters each variant has, their ranges and conditions."""

"""The Optuna study: objective, samplers, early stopping, workers, Pareto selection."""

"""The Optuna study, split by job: config, storage, samplers, records (the stored keys), objective,
report, the run loop (study), early stopping, Pareto selection and refits."""

"""Every MLflow call: runs, metrics, tags, plots, registry, export."""

"""Beyond one process: per-ticker batch jobs and hyperparameter search, on Ray when asked."""

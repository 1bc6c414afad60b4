"""ptlab.trainer: the one training loop (entrypoint `ptlab train`)."""

"""Training: a generic loop (``fit``), per-task steps, optimizers, callbacks, checkpoints."""

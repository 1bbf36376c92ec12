"""Training: optimizers and schedules, the loop, checkpoints."""

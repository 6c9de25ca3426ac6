"""Training: data sampling, the optimisation loop, checkpoints and export."""

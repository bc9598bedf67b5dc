"""Dataset builders, training, baselines and evaluation for photod's models (`photod.training`)."""

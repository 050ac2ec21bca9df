"""Tasks: what is predicted, one registered class per task (recfit.tasks.registry).

Each task is one module here (rating, ctr, ranking, text_classification) that says, in one place, the
losses that fit it, the metrics it reports and which direction is better, the per-row columns of
per_user.parquet, its config checks, and how training makes its targets, outputs, loss and metrics.

Importing a task costs no torch, Hydra or OmegaConf: `recfit.config` validates with it before anything
heavy loads, and `recfit compare` reads metric directions from it. The methods that train import torch
when they are first called.
"""

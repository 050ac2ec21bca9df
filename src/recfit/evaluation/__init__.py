"""Metrics as plain functions over tensors, shared by training, evaluation and benchmarks."""

"""Data: raw files -> canonical tables -> split -> encoded items -> batches. Knows no model."""

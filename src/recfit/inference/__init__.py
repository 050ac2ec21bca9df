"""Using a trained model: load a run's best checkpoint, evaluate it, recommend, explain, export vectors."""

"""Training: where data and models meet. Imported only after the config is validated."""

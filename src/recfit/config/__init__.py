"""Configuration: schemas, composition and validation. Imports no torch, transformers or Lightning."""

from recfit.config.compose import compose, conf_dir, list_options
from recfit.config.validate import validate

__all__ = ["compose", "conf_dir", "list_options", "validate"]

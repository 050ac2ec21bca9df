"""recfit: fine-tune pretrained backbones into recommender systems."""

__version__ = "0.1.0"

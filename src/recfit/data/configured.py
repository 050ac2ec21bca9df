"""Read the data set a `dataset` config describes, with the reader its `_target_` names."""

from __future__ import annotations

import inspect

from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from recfit.config.schema import reader_arguments
from recfit.data.tables import RecData


def read_dataset(cfg: DictConfig) -> RecData:
    """Call the data set's reader with the keys its schema declares."""
    reader = get_method(cfg._target_)
    arguments = {key: cfg[key] for key in reader_arguments(OmegaConf.get_type(cfg))}
    if "on_bad_rows" in inspect.signature(reader).parameters:
        arguments["on_bad_rows"] = cfg.on_bad_rows.value
    return reader(**arguments)

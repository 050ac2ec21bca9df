"""The one exception type that means "the user's input is wrong", not "recfit has a bug".

Anything raised as a RecfitError reaches the terminal as one line and a non-zero exit, with no
traceback. Everything else is a bug and keeps its traceback.
"""


class RecfitError(Exception):
    """Bad configuration, data file or checkpoint: reported as one line."""


class ConfigError(RecfitError):
    """The composed configuration is invalid."""


class DataError(RecfitError):
    """A data file is missing, unreadable or malformed."""


class TrainingDivergedError(RecfitError):
    """The training loss became NaN or infinite."""

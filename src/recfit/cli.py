"""`recfit <command> [overrides]`: parse and dispatch; the work lives elsewhere."""

from __future__ import annotations

import sys

USAGE = """usage: recfit <command> [key=value ...]

commands:
  train     fine-tune and evaluate (a Hydra app: recfit train --help lists the config groups)

examples:
  recfit train                                   # the quickstart: MiniLM two-tower on synthetic data
  recfit train experiment=ml100k_rating dataset.path=path/to/ml-100k
  recfit train backbone=tiny_bert trainer.max_epochs=1
"""

TRAIN_HELP = """usage: recfit train [key=value ...] [-m] [--cfg job]

Compose a run from one option per group (group=option), then override any key (a.b=value).
{groups}

  recfit train --cfg job          print the composed config without running
  recfit train -m seed=1,2,3      a sweep: one run folder per job
  recfit train --hydra-help       Hydra's own flags
"""

HYDRA_FLAGS = ("--hydra-help", "--cfg", "-c", "--info", "--shell-completion", "-sc")
MULTIRUN_FLAGS = ("-m", "--multirun")


def _fail(message: str) -> None:
    print(f"recfit: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _train(arguments: list[str]) -> None:
    """Check the config before Hydra starts (one clear line on error), then hand over to Hydra."""
    from recfit.errors import RecfitError

    if "--help" in arguments or "-h" in arguments:
        from recfit.config import list_options

        groups = "\n".join(f"  {group:<11} {', '.join(options)}" for group, options in list_options().items())
        print(TRAIN_HELP.format(groups=groups))
        return
    if not any(a in HYDRA_FLAGS or a in MULTIRUN_FLAGS or a.startswith("--") for a in arguments):
        from recfit.config import compose, validate

        try:
            validate(compose(arguments))
        except RecfitError as error:
            _fail(str(error))
    from recfit.apps import train_app

    sys.argv = ["recfit train", *arguments]
    train_app()


COMMANDS = {"train": _train}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `recfit` console script and of `python -m recfit`."""
    arguments = sys.argv[1:] if argv is None else argv
    if not arguments or arguments[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    command, rest = arguments[0], arguments[1:]
    if command not in COMMANDS:
        _fail(f"unknown command '{command}' (commands: {', '.join(COMMANDS)})")
    COMMANDS[command](rest)

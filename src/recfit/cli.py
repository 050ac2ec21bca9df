"""`recfit <command> [overrides]`: parse and dispatch; the work lives elsewhere."""

from __future__ import annotations

import sys
from pathlib import Path

USAGE = """usage: recfit <command> [key=value ...]    (recfit --version; recfit <command> --help)

commands:
  train     fine-tune and evaluate (a Hydra app: recfit train --help lists the config groups)
  sweep     sweep resume SWEEP_DIR [key=value ...]: re-run only the failed or missing jobs
  compare   compare DIR... [options]: one table of runs, mean +- std, paired significance, plots
  validate  validate [key=value ...] [-m]: compose and check a run, or every job of a sweep; load nothing
  rerun     rerun RUN_DIR [key=value ...]: run again from a run folder's overrides, into a new folder
  eval      eval RUN_DIR [key=value ...]: test a run's best checkpoint (or on other data) into a new folder
  recommend recommend RUN_DIR --user ID [--k 10] [--explain] [--format json]: a user's top-k unseen items
            (--history ID,ID,... instead of --user: a user not in training, for history-encoder runs)
  embed     embed RUN_DIR --items [--output FILE]: export item vectors to Parquet
  predict   predict RUN_DIR --input new.csv [--output preds.csv]: predict each row; metrics if labelled

examples:
  recfit train                                   # the quickstart: MiniLM two-tower on synthetic data
  recfit train experiment=ml100k_rating dataset.reader.path=path/to/ml-100k
  recfit train backbone=tiny_bert trainer.max_epochs=1
  recfit compare outputs/sweeps/quickstart --group-by backbone --baseline backbone=minilm
"""

TRAIN_HELP = """usage: recfit train [key=value ...] [-m] [--cfg job]

Compose a run from one option per group (group=option), then override any key (a.b=value).
{groups}

top-level keys (key=value):
{keys}

Every key of every group, with its type, default and meaning: docs/configuration.md

  recfit train --cfg job          print the composed config without running
  recfit train -m seed=1,2,3      a sweep: one run folder per job
  recfit train --hydra-help       Hydra's own flags
"""

MULTIRUN_FLAGS = ("-m", "--multirun")
HELP_FLAGS = ("-h", "--help")

# commands whose arguments are not parsed by argparse: their --help text
COMMAND_HELP = {
    "sweep": """usage: recfit sweep resume SWEEP_DIR [key=value ...]

Re-run only the failed, interrupted or missing jobs of a grid sweep, each into its own numbered folder;
failed attempts move to SWEEP_DIR/.attempts/. Overrides apply to the re-run jobs.""",
    "validate": """usage: recfit validate [key=value ...] [-m]

Compose and check a run (or, with -m, every job of a sweep) exactly as `recfit train` would before it
starts; load no data and no model. Prints "ok: ..." or one line `recfit: error: ...`.""",
    "rerun": """usage: recfit rerun RUN_DIR [key=value ...]

Train again from a run folder's .hydra/overrides.yaml, with the new overrides on top, into a new folder.""",
}


def _fail(message: str) -> None:
    print(f"recfit: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _train(arguments: list[str], rerun_of: tuple[Path, list[str]] | None = None) -> None:
    """Hand over to recfit.apps.launch, which checks the config first (one clear line on error)."""
    from recfit.errors import RecfitError

    if "--help" in arguments or "-h" in arguments:
        from recfit.config import list_options
        from recfit.config.help import top_level_keys

        groups = "\n".join(f"  {group:<11} {', '.join(options)}" for group, options in list_options().items())
        keys = "\n".join(f"  {key:<26} {comment}" for key, comment in top_level_keys())
        print(TRAIN_HELP.format(groups=groups, keys=keys))
        return
    from recfit.apps import launch

    try:
        launch(arguments, rerun_of=rerun_of)
    except RecfitError as error:
        _fail(str(error))


def _sweep(arguments: list[str]) -> None:
    """`recfit sweep resume SWEEP_DIR [overrides]`."""
    from recfit.errors import RecfitError

    if len(arguments) < 2 or arguments[0] != "resume":
        _fail("usage: recfit sweep resume SWEEP_DIR [key=value ...]")
    from recfit.training.sweep_resume import resume_sweep

    try:
        raise SystemExit(resume_sweep(Path(arguments[1]), arguments[2:]))
    except RecfitError as error:
        _fail(str(error))


def _compare(arguments: list[str]) -> None:
    """`recfit compare DIR... [options]` (reads run folders only; never imports torch)."""
    from recfit.compare.cli import run

    raise SystemExit(run(arguments))


def _validate(arguments: list[str]) -> None:
    """`recfit validate [overrides] [-m]`: the checks `train` makes before it starts, and nothing else."""
    from recfit.config import compose, validate
    from recfit.config.sweep import is_search_sweep, validate_sweep
    from recfit.errors import RecfitError

    overrides = [a for a in arguments if a not in MULTIRUN_FLAGS]
    try:
        if len(overrides) < len(arguments):
            if is_search_sweep(overrides):
                _fail("an Optuna search's trials are only known as it runs; validate a single trial instead")
            print(f"ok: all {validate_sweep(overrides)} jobs of the sweep are valid")
        else:
            validate(compose(overrides))
            print("ok: the run is valid")
    except RecfitError as error:
        _fail(str(error))


def _rerun(arguments: list[str]) -> None:
    """`recfit rerun RUN_DIR [overrides]`: the saved overrides, then the new ones, into a new run folder."""
    from recfit.config.rerun import saved_overrides
    from recfit.errors import RecfitError

    if not arguments:
        _fail("usage: recfit rerun RUN_DIR [key=value ...]")
    try:
        overrides = saved_overrides(Path(arguments[0]))
    except RecfitError as error:
        _fail(str(error))
    _train([*overrides, *arguments[1:]], rerun_of=(Path(arguments[0]), arguments[1:]))


def _inference(name: str):
    """`eval`, `recommend`, `embed`: parsed and run by recfit.inference.cli."""

    def command(arguments: list[str]) -> None:
        from recfit.inference import cli

        raise SystemExit(getattr(cli, f"{name}_command")(arguments))

    return command


COMMANDS = {
    "train": _train,
    "sweep": _sweep,
    "compare": _compare,
    "validate": _validate,
    "rerun": _rerun,
    "eval": _inference("eval"),
    "recommend": _inference("recommend"),
    "embed": _inference("embed"),
    "predict": _inference("predict"),
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `recfit` console script and of `python -m recfit`."""
    arguments = sys.argv[1:] if argv is None else argv
    if not arguments or arguments[0] in ("-h", "--help", "help"):
        print(USAGE)
        return
    if arguments[0] in ("--version", "-V"):
        from recfit import __version__

        print(f"recfit {__version__}")
        return
    command, rest = arguments[0], arguments[1:]
    if command in COMMAND_HELP and any(a in HELP_FLAGS for a in rest):
        print(COMMAND_HELP[command])
        return
    if command not in COMMANDS:
        _fail(f"unknown command '{command}' (commands: {', '.join(COMMANDS)})")
    COMMANDS[command](rest)

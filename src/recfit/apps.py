"""`launch`: the one way into the Hydra app behind `recfit train`. Heavy imports wait until the config
is valid.

Every entry calls `launch`: the `recfit train` and `recfit rerun` commands, `recfit.train()`,
`recfit sweep resume`, and the DDP ranks that Lightning re-executes (`python -m recfit.train_entry`).
A single run is composed and validated once, here, and then runs as a Hydra job with that very config
(Hydra writes `.hydra/`, sets up logging into the run folder and calls the callbacks, as for any job).
Sweeps (`-m`) and Hydra's own flags (`--cfg job`, `--info`) go through Hydra's command line; a grid
sweep's jobs are composed and validated before the first starts, and Hydra then runs those very configs
(`recfit.config.sweep.composed_once`); `train_job` validates each job as it starts (an Optuna trial is
only known then). See docs/architecture.md.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
import hydra.core.utils
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from recfit.config import (
    compose,
    conf_dir,
    resolvers,  # noqa: F401  (optuna_direction, used by hparams_search=optuna)
    validate,
)
from recfit.config.domains import expand_domains
from recfit.config.launch import (
    check_sweep_strategy,
    is_first_process,
    reexecutes_command_line,
    started_externally,
)
from recfit.config.multitask import monitor_key
from recfit.config.record import run_identity
from recfit.config.schema import register_schemas
from recfit.errors import ConfigError, RecfitError
from recfit.heavy_imports import heavy_imports, imports_out_of_garbage_collection

log = logging.getLogger("recfit")

register_schemas()


def _save_config_atomically(cfg: DictConfig, filename: str, output_dir: Path) -> None:
    """Hydra's writer of `.hydra/*.yaml`, made atomic: a resumed run rewrites them, and one that fails
    to (a full disk) must leave the run's own config and overrides whole, since resuming reads them."""
    from recfit.run_folder import write_text_atomic, writing

    with writing(output_dir):
        output_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output_dir / filename, OmegaConf.to_yaml(cfg))


# every job, single runs and sweeps, writes .hydra/ through hydra.core.utils.run_job (hydra-core < 1.4)
hydra.core.utils._save_config = _save_config_atomically

COMMAND = "recfit train"  # sys.argv[0] while Hydra's command line parses the rest
CONFIG_NAME = "train"
RUN_DIR_KEY = "hydra.run.dir"
MULTIRUN_FLAGS = ("-m", "--multirun")
ENTRY_MODULE = "recfit.train_entry"  # what Lightning's ddp re-executes for ranks 1..N-1
# Where a run is continued: only `recfit train` (a shell command) may resume; new runs never name these.
RESUME_KEYS = ("resume", "ckpt_path")


def launch(
    arguments: list[str] | tuple[str, ...],
    *,
    in_process: bool = False,
    rerun_of: tuple[Path, list[str]] | None = None,
) -> Path | None:
    """Run `recfit train ARGUMENTS`: one run, or a sweep (-m), or one of Hydra's flags.

    Raises RecfitError (one line) for a config that cannot run, before anything heavy is imported.
    A run that starts and then fails exits with SystemExit(1) after its one line (metrics.json says
    why); an interrupted one with SystemExit(128 + signal). Returns the run folder of a single run.

    `in_process`: this process is not the run's own (recfit.train, sweep resume): strategies that
    re-run the command line are refused, a run that fails raises RecfitError (the error in its
    metrics.json) instead of exiting, and the logging set up for the run is undone afterwards.

    `rerun_of`: (the run folder whose saved overrides start `arguments`, the overrides given on top of
    them), for `recfit rerun`: like a resume, a rerun is refused if its config now differs from that
    run's at a key not given on top.
    """
    from recfit.config.yaml_guard import check_config_dirs

    arguments = expand_domains(list(arguments))  # dataset=[a,b]: Hydra and overrides.yaml see the expansion
    check_config_dirs(arguments)  # --config-path / --config-dir: YAML that could hang Hydra
    if any(argument.startswith("-") for argument in arguments):
        if in_process:
            raise ConfigError(f"{COMMAND} in process takes key=value overrides only (no -m or flags)")
        _hydra_command_line(arguments)
        return None
    given_now = arguments
    resuming = any(_key(argument) in RESUME_KEYS for argument in arguments)
    if resuming:
        from recfit.config.resume import resume_overrides

        arguments = resume_overrides(arguments)
    cfg = compose(arguments, with_hydra=True)
    validate(job_config(cfg))
    if rerun_of is not None:
        from recfit.config.resume import refuse_changed_config

        refuse_changed_config(job_config(cfg), rerun_of[0], rerun_of[1], "rerun")
    elif resuming and cfg.ckpt_path:
        from recfit.config.resume import refuse_changed_config

        refuse_changed_config(job_config(cfg), Path(str(cfg.hydra.run.dir)), given_now)
    strategy = str(cfg.trainer.strategy)
    reexecutes = not started_externally() and reexecutes_command_line(cfg)
    if reexecutes and in_process:
        raise ConfigError(
            f"recfit.train runs in this process: trainer.strategy={strategy} would re-run your script in "
            "every rank; use trainer=ddp_cpu or trainer.strategy=ddp_spawn, or `recfit train` from a shell"
        )
    run_dir = _pin_run_dir(cfg)
    if reexecutes:
        _reexecute_as_entry(arguments)
    with _restored_logging(in_process), _owning(run_dir, resuming=bool(cfg.ckpt_path)):
        try:
            _run_job(cfg)
        except SystemExit as stop:
            if not (in_process and stop.code):
                raise
            from recfit.run_folder import read_record_if_any

            error = read_record_if_any(run_dir).get("error")
            raise RecfitError(error or f"training failed (exit {stop.code})") from None
    return run_dir


@contextmanager
def _owning(run_dir: Path, resuming: bool) -> Iterator[None]:
    """The first process holds the run folder's lock for the whole run (a second one, say a second
    `resume=auto`, is refused in one line); DDP ranks 1..N-1 run in the folder rank 0 holds.

    A resume checked that its run was unfinished before it took this lock; another resume started at
    the same time may have completed the run since, so the check is made again under the lock."""
    if not is_first_process():
        yield
        return
    from recfit.run_folder import owned

    with owned(run_dir):
        if resuming:
            from recfit.config.resume import refuse_if_completed

            refuse_if_completed(run_dir)
        yield


def job_config(cfg: DictConfig) -> DictConfig:
    """The config a job sees: `cfg` without its `hydra` node."""
    job = copy.deepcopy(cfg)
    with read_write(job), open_dict(job):
        job.pop("hydra", None)
    return job


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def _pin_run_dir(cfg: DictConfig) -> Path:
    """Resolve hydra.run.dir (a timestamp) once, so the folder reported is the folder written."""
    run_dir = str(OmegaConf.select(cfg, RUN_DIR_KEY))
    with read_write(cfg.hydra), open_dict(cfg.hydra):
        cfg.hydra.run.dir = run_dir
        if cfg.hydra.mode is None:
            cfg.hydra.mode = RunMode.RUN
    return Path(run_dir).absolute()


def _reexecute_as_entry(arguments: list[str]) -> None:
    """Lightning's ddp starts ranks 1..N-1 by running `python -m <module of __main__> sys.argv[1:]`
    (plus the run folder). `recfit train ...` does not survive that rewrite, so the command it sees
    is `python -m recfit.train_entry ARGUMENTS`, which calls `launch` again in each rank."""
    import __main__

    spec = importlib.util.find_spec(ENTRY_MODULE)
    assert spec is not None and spec.origin is not None
    sys.argv = [spec.origin, *arguments]
    __main__.__spec__ = spec


def _hydra_command_line(arguments: list[str]) -> None:
    """A sweep or a Hydra flag: Hydra parses the command line (sys.argv, restored afterwards)."""
    if any(argument in MULTIRUN_FLAGS for argument in arguments):
        from recfit.config.sweep import MULTIRUN_MODE, composed_once

        # what Hydra adds when the config leaves hydra.mode unset, added before Hydra composes the
        # sweep's config to find the mode: that config is then composed once, not twice
        mode = [] if _key(MULTIRUN_MODE) in map(_key, arguments) else [MULTIRUN_MODE]
        with composed_once():  # each job composed once: validated here, run by Hydra's launcher
            _validate_sweep_up_front(arguments)
            from recfit.data.read_once import reads_kept

            # jobs that read the same files with the same reader read them once
            with reads_kept(), imports_out_of_garbage_collection():
                _run_train_app([*arguments, *mode])
    else:
        _run_train_app(arguments)


def _validate_sweep_up_front(arguments: list[str]) -> None:
    """Refuse a sweep with a bad job in one line before its first job starts."""
    from recfit.config.sweep import check_search_sweep, is_search_sweep, validate_sweep

    overrides = [argument for argument in arguments if not argument.startswith("-")]
    if not is_search_sweep(overrides):
        print(f"recfit: sweep of {validate_sweep(overrides)} jobs validated", file=sys.stderr)
    else:  # a search's trials are checked as they start; what Hydra acts on first is checked now
        check_search_sweep(overrides)


def _run_train_app(arguments: list[str]) -> None:
    """Hydra's command line over ARGUMENTS; then one line if any job of a sweep failed."""
    from recfit.training.sweep_summary import ENDED

    ended = len(ENDED)
    saved = sys.argv
    sys.argv = [COMMAND, *arguments]
    try:
        train_app()
    finally:
        sys.argv = saved
    for outcome in ENDED[ended:]:  # each failed job was recorded and the sweep went on; now say so
        if outcome.failed:
            print(
                f"recfit: error: {outcome.failed} of {outcome.total} jobs failed; summary: {outcome.summary}",
                file=sys.stderr,
            )
            raise SystemExit(1)


def _run_job(cfg: DictConfig) -> None:
    """Run one validated config as a Hydra job, as Hydra's own single-run path does, without composing
    it again: the run folder and .hydra/, logging into <run>/train.log, and the hydra.callbacks."""
    from hydra._internal.callbacks import Callbacks  # hydra-core is pinned below 1.4
    from hydra.core.utils import configure_log, run_job
    from hydra.types import HydraContext

    callbacks = Callbacks(cfg)
    callbacks.on_run_start(config=cfg, config_name=CONFIG_NAME)
    configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
    job = run_job(
        # run_job reads only the callbacks; the config loader serves launchers that compose jobs
        hydra_context=HydraContext(config_loader=None, callbacks=callbacks),  # type: ignore[arg-type]
        task_function=lambda job_cfg: train_job(job_cfg, validated=True),
        config=cfg,
        job_dir_key=RUN_DIR_KEY,
        job_subdir_key=None,
    )
    callbacks.on_run_end(config=cfg, config_name=CONFIG_NAME, job_return=job)
    job.return_value  # noqa: B018 - re-raises what the job raised (a bug keeps its traceback)


@contextmanager
def _restored_logging(restore: bool) -> Iterator[None]:
    """Hydra points the root logger at <run>/train.log: later work in this process is not that run's.

    While the run runs, a log line that cannot be written (train.log on a full disk) is dropped
    instead of printing a traceback of its own: the run's one error line says what went wrong."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_raise, logging.raiseExceptions = logging.raiseExceptions, False
    try:
        yield
    finally:
        logging.raiseExceptions = saved_raise
        if restore:
            for handler in root.handlers[:]:
                if handler not in saved_handlers:
                    root.removeHandler(handler)
                    handler.close()
            root.setLevel(saved_level)


def train_job(cfg: DictConfig, validated: bool = False) -> float | None:
    """One job: validate (unless `launch` did), then train into Hydra's output folder.

    Returns the monitored metric. In a sweep, a job that fails for any reason is recorded as failed
    (metrics.json, the log, the sweep summary) and returns None, which Optuna counts as a failed
    trial; the sweep goes on.
    """
    hydra_cfg = HydraConfig.get()
    in_sweep = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        if not validated:
            validate(cfg)
        if in_sweep:  # a search's trials are only known here; grid sweeps were checked before they started
            check_sweep_strategy(cfg, started_externally())
    except RecfitError as error:
        from recfit.run_folder import record_failure

        record_failure(run_dir, run_identity(cfg), error)
        return _report_failure(error, in_sweep)
    with heavy_imports():
        from lightning.pytorch.utilities import rank_zero_only

        from recfit.report import print_metrics
        from recfit.training.console import is_quiet, summary_line
        from recfit.training.run import train

    try:
        result = train(cfg, run_dir)
    except RecfitError as error:
        return _report_failure(error, in_sweep)
    except Exception as error:  # a bug or a crash: keep the traceback, but never kill the sweep
        if not in_sweep:
            raise
        log.exception("job failed: %s", error)
        return None
    if rank_zero_only.rank == 0:  # DDP ranks 1..N-1 print nothing
        if is_quiet(cfg):  # still the one line a script or a sweep's log needs
            print(summary_line(result.metrics, monitor_key(cfg), result.run_dir))
        else:
            print_metrics(result.metrics, result.run_dir, result.status, result.record["duration_s"])
    return result.metrics.get(monitor_key(cfg))


# Hydra's command line: sweeps (-m) and flags. The config path is the `conf/` tree, wherever installed.
train_app = hydra.main(config_path=str(conf_dir()), config_name=CONFIG_NAME, version_base="1.3")(train_job)


def _report_failure(error: RecfitError, in_sweep: bool) -> None:
    log.error("%s", error)
    print(f"recfit: error: {error}", file=sys.stderr)
    if not in_sweep:
        raise SystemExit(1)
    return None

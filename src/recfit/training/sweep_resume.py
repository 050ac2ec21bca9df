"""`recfit sweep resume SWEEP_DIR`: run again only the jobs that failed or never ran, keeping numbers."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import yaml

from recfit.config.rerun import checked_overrides
from recfit.config.sweep import expand_sweep, is_search_sweep
from recfit.config.yaml_guard import check_yaml_file
from recfit.errors import ConfigError, RecfitError
from recfit.run_folder import Status, status_of
from recfit.training.sweep_summary import write_summary

log = logging.getLogger(__name__)

ATTEMPTS_DIR = ".attempts"  # earlier attempts of re-run jobs are moved here, never deleted


def pending_jobs(sweep_dir: Path) -> tuple[list[list[str]], list[int]]:
    """All jobs' overrides (from the sweep's multirun.yaml) and the numbers of those not completed."""
    multirun = sweep_dir / "multirun.yaml"
    if not multirun.is_file():
        raise ConfigError(f"{sweep_dir} is not a sweep folder (no multirun.yaml)")
    try:  # a sweep folder is data: its overrides are checked like a run folder's (recfit.config.rerun)
        arguments = yaml.safe_load(check_yaml_file(multirun))["hydra"]["overrides"]["task"]
    except (yaml.YAMLError, KeyError, TypeError):
        raise ConfigError(f"{multirun} has no hydra.overrides.task list") from None
    arguments = checked_overrides(arguments, multirun)
    if is_search_sweep(arguments):
        raise ConfigError("an Optuna sweep cannot be resumed job by job; start a new search instead")
    jobs = expand_sweep(arguments)
    return jobs, [n for n in range(len(jobs)) if status_of(sweep_dir / str(n)) != Status.completed]


def resume_sweep(sweep_dir: Path, extra_overrides: list[str]) -> int:
    """Re-run each failed, interrupted or missing job into its own numbered folder; returns an exit code."""
    from recfit.apps import launch
    from recfit.training.console import sweep_jobs  # quiet by default, as the sweep's own jobs were

    jobs, pending = pending_jobs(sweep_dir)
    print(f"{sweep_dir}: {len(jobs) - len(pending)} of {len(jobs)} jobs completed; re-running {pending}")
    failed = []
    for number in pending:
        folder = sweep_dir / str(number)
        if folder.exists():
            attempts = sweep_dir / ATTEMPTS_DIR
            attempts.mkdir(exist_ok=True)
            folder.rename(attempts / f"{number}-{datetime.now():%Y-%m-%d_%H-%M-%S_%f}")
        try:
            with sweep_jobs():
                launch([*jobs[number], *extra_overrides, f"hydra.run.dir={folder}"], in_process=True)
        except RecfitError as error:  # the job's one line was printed; metrics.json, if any, says why
            log.error("job %d: %s", number, error)
        except Exception:  # a bug in one job never stops the others
            log.exception("job %d failed", number)
        if status_of(folder) != Status.completed:
            failed.append(number)
    write_summary(sweep_dir)
    print(f"resumed {len(pending)} jobs: {len(pending) - len(failed)} completed, failed: {failed or 'none'}")
    return 1 if failed else 0

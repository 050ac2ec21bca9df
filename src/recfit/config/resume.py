"""`resume=auto` and `ckpt_path=`: find the unfinished run to continue, and rebuild its overrides.

A resumed run continues in its own folder, with the overrides it was started with (plus any given
now), from its checkpoints/last.ckpt. A completed run is never resumed, and neither is a run whose
process is still alive on this machine.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from recfit.config.compose import compose
from recfit.config.rerun import saved_overrides
from recfit.config.yaml_guard import check_yaml_file
from recfit.errors import ConfigError
from recfit.run_folder import (
    CONFIG_FILE,
    RESUMABLE,
    Status,
    alive_here,
    flatten,
    last_checkpoint,
    read_record_if_any,
)

# Keys a resume sets itself, or that say where things are rather than what the run computes
SET_BY_RESUME = ("resume", "ckpt_path", "paths")


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def newest_unfinished_run(runs_dir: Path) -> Path | None:
    """The newest run folder under `runs_dir` that stopped before completing and has a last.ckpt."""
    candidates = sorted((p for p in runs_dir.glob("*") if last_checkpoint(p).is_file()), reverse=True)
    for folder in candidates:
        record = read_record_if_any(folder)
        if record.get("status") in RESUMABLE and not alive_here(record):
            return folder
    return None


def refuse_if_completed(run_dir: Path) -> None:
    """ConfigError (one line) when the run has completed. Checked again once the resuming process holds
    the run's lock: another resume started at the same time may have completed it in the meantime."""
    if read_record_if_any(run_dir).get("status") == Status.completed:
        raise ConfigError(f"{run_dir} has completed; a finished run is never resumed (use recfit rerun)")


def resume_overrides(arguments: list[str]) -> list[str]:
    """The overrides that continue a run: its saved ones, then `arguments`, then its folder and checkpoint."""
    given = {_key(a): a.partition("=")[2] for a in arguments}
    if given.get("resume", "null") not in ("null", "auto"):
        raise ConfigError(f"resume must be auto or null (got '{given['resume']}')")
    if given.get("ckpt_path", "null") != "null":
        checkpoint = Path(given["ckpt_path"]).expanduser().resolve()
        if not checkpoint.is_file():
            raise ConfigError(f"ckpt_path does not exist: {given['ckpt_path']}")
        run_dir = checkpoint.parent.parent
    elif given.get("resume") == "auto":
        cfg = compose([a for a in arguments if _key(a) != "resume"])
        runs_dir = Path(cfg.paths.output_dir) / "runs" / cfg.experiment_name
        found = newest_unfinished_run(runs_dir)
        if found is None:
            raise ConfigError(f"resume=auto: no unfinished run with a checkpoint under {runs_dir}")
        run_dir, checkpoint = found.resolve(), last_checkpoint(found).resolve()
    else:
        return arguments
    record = read_record_if_any(run_dir)
    refuse_if_completed(run_dir)
    if alive_here(record):
        raise ConfigError(f"{run_dir} is still running (process {record['pid']}); stop it before resuming")
    kept = [a for a in arguments if _key(a) not in ("resume", "ckpt_path")]
    return [*saved_overrides(run_dir), *kept, f"ckpt_path={checkpoint}", f"hydra.run.dir={run_dir}"]


def refuse_changed_config(
    cfg: DictConfig, run_dir: Path, given_now: list[str], action: str = "resume"
) -> None:
    """ConfigError (one line) when the config composed now to resume (or rerun) the run in `run_dir`
    differs from the one it started with (its .hydra/config.yaml) at a key not given now: recfit's
    defaults or conf/ changed since, and the run would go on (or run again) as another run. Keys the
    run's config no longer has (moved by a later recfit) are not compared."""
    file = run_dir / CONFIG_FILE
    if not file.is_file():
        return
    try:
        started = yaml.safe_load(check_yaml_file(file))
    except yaml.YAMLError as error:
        raise ConfigError(f"cannot read {file}: {str(error).splitlines()[0]}") from None
    if not isinstance(started, dict):
        raise ConfigError(f"{file} is not a config")
    now = flatten(OmegaConf.to_container(cfg, resolve=False, enum_to_str=True))
    skipped = {_key(argument) for argument in given_now} | set(SET_BY_RESUME)
    for key, before in flatten(started).items():
        if any(key == name or key.startswith(f"{name}.") for name in skipped):
            continue
        after = now.get(key)  # None: a key a later recfit moved, not compared
        if after is not None and after != before:
            raise ConfigError(
                f"{action}: {key} is {after} now but {run_dir.name} started with {before} (recfit's "
                f"defaults or conf/ changed since); pass {key}={before} to {action} it as it started"
            )

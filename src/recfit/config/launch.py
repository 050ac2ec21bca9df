"""Which DDP strategies can run where: the Hydra + DDP trap, refused before anything starts.

Lightning's `ddp` strategy starts ranks 1..N-1 by re-running the command line. Inside a Hydra multirun
that command line is the whole sweep, so each rank would run the sweep again (with an Optuna search,
other hyperparameters). `ddp_spawn` starts its workers in-process and is safe; so is `ddp` when the
processes are started from outside (torchrun, or SLURM tasks through hydra/launcher=submitit_slurm).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from omegaconf import DictConfig, ListConfig

from recfit.errors import ConfigError

SAFE_IN_SWEEPS = ("auto", "ddp_spawn", "single_device")
# set by torchrun (TorchElasticEnvironment) and by SLURM (SLURMEnvironment): one process per rank exists
EXTERNAL_LAUNCH_VARIABLES = ("LOCAL_WORLD_SIZE", "SLURM_NTASKS")
EXTERNAL_LAUNCHERS = ("hydra/launcher=submitit_slurm",)


# set in every process but the first by torchrun, SLURM and Lightning's own ddp launcher
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def is_first_process(environ: Mapping[str, str] | None = None) -> bool:
    """True in rank 0 (or a run without ranks): the process that owns and writes the run folder."""
    environ = os.environ if environ is None else environ
    return all(environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def started_externally(environ: Mapping[str, str] | None = None) -> bool:
    """True when torchrun or SLURM already started one process per rank."""
    environ = os.environ if environ is None else environ
    return any(name in environ for name in EXTERNAL_LAUNCH_VARIABLES)


def reexecutes_command_line(cfg: DictConfig) -> bool:
    """Whether Lightning starts ranks 1..N-1 by re-running the command line: `ddp` and the other
    non-spawning strategies, and `auto` given several devices or nodes (it then picks `ddp`).

    `devices: auto` counts as one device: which count `auto` means on a GPU machine is only known
    once torch looks, after validation.
    """
    trainer = cfg.trainer
    strategy = str(trainer.strategy)
    if strategy != "auto":
        return not strategy.startswith(SAFE_IN_SWEEPS)
    devices = trainer.devices
    several = (
        len(devices) > 1
        if isinstance(devices, (list, ListConfig))
        else devices == -1 or (isinstance(devices, int) and devices > 1)
    )
    return several or int(trainer.num_nodes) > 1


def check_sweep_strategy(cfg: DictConfig, external: bool) -> None:
    """Refuse a strategy that re-executes the command line inside a multirun (one ConfigError line)."""
    if external or not reexecutes_command_line(cfg):
        return
    strategy = str(cfg.trainer.strategy)
    raise ConfigError(
        f"trainer.strategy={strategy} re-runs the command line in every rank, which inside a sweep re-runs "
        "the sweep: use trainer=ddp_cpu or trainer.strategy=ddp_spawn in sweeps, or "
        "hydra/launcher=submitit_slurm with one task per device"
    )

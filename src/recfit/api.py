"""The Python API, mirroring the command line: `recfit.train(...)` and `recfit.load_run(...)`.

    import recfit
    result = recfit.train(overrides=["backbone=tiny_bert", "trainer.max_epochs=1"])
    result.metrics["test/ndcg@10"], result.run_dir
    run = recfit.load_run(result.run_dir)   # run.cfg, run.metrics, run.module, run.datamodule

Heavy imports wait until a function is called, so `import recfit` stays cheap.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recfit.training.run_folder import RunResult as TrainResult  # torch-free: paths and JSON only

if TYPE_CHECKING:
    from recfit.inference.checkpoint import LoadedRun
    from recfit.inference.evaluate import EvalResult
    from recfit.inference.predict import Predictions


def _run_dir(overrides: list[str]) -> Path:
    """The folder Hydra will create for these overrides (hydra.run.dir resolved now, once)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from recfit.config import conf_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    return Path(OmegaConf.select(cfg, "hydra.run.dir")).absolute()


def train(overrides: list[str] | tuple[str, ...] = ()) -> TrainResult:
    """Train one run as `recfit train *overrides` would (the same Hydra app, in this process).

    Raises RecfitError (one line) for an invalid config or a run that fails on bad input.
    """
    from recfit.config import compose, validate
    from recfit.config.domains import expand_domains
    from recfit.config.launch import SAFE_IN_SWEEPS, started_externally
    from recfit.errors import RecfitError
    from recfit.training.run_folder import METRICS_FILE

    overrides = list(overrides)
    if any(o in ("-m", "--multirun") or o.startswith("--") for o in overrides):
        raise RecfitError("recfit.train runs one job: pass key=value overrides only (no -m or flags)")
    if any(o.startswith(("resume=", "ckpt_path=", "hydra.run.dir=")) for o in overrides):
        raise RecfitError("recfit.train starts new runs only; resume a run with `recfit train resume=auto`")
    overrides = expand_domains(overrides)  # dataset=[a,b], as `recfit train` expands it
    cfg = compose(overrides)
    validate(cfg)
    strategy = str(cfg.trainer.strategy)
    if not started_externally() and not strategy.startswith(SAFE_IN_SWEEPS):
        raise RecfitError(
            f"recfit.train runs in this process: trainer.strategy={strategy} would re-run your script in "
            "every rank; use trainer=ddp_cpu or trainer.strategy=ddp_spawn, or `recfit train` from a shell"
        )
    run_dir = _run_dir(overrides)

    from recfit.apps import train_app

    saved_argv, root = sys.argv, logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    sys.argv = ["recfit train", *overrides, f"hydra.run.dir={run_dir}"]
    try:
        train_app()
    except SystemExit as stop:
        if stop.code:
            record = _read_record(run_dir / METRICS_FILE)
            raise RecfitError(record.get("error") or f"training failed (exit {stop.code})") from None
    finally:
        sys.argv = saved_argv
        # Hydra pointed the root logger at <run>/train.log: later work in this process is not that run's
        for handler in root.handlers[:]:
            if handler not in saved_handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(saved_level)
    record = _read_record(run_dir / METRICS_FILE)
    return TrainResult(record["status"], record.get("metrics") or {}, run_dir, record)


def _read_record(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def load_run(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedRun:
    """A completed run folder's config, metrics, model (best weights, eval mode) and datamodule.

    `overrides` may point the model at other data (see `recfit eval`).
    """
    from recfit.inference.checkpoint import load_run as load

    return load(path, overrides)


def evaluate(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> EvalResult:
    """`recfit eval`: test a run's best checkpoint into a new evaluation folder."""
    from recfit.inference.evaluate import evaluate as run_eval

    return run_eval(path, overrides)


def predict(
    path: str | Path, input: str | Path, output: str | Path | None = None, **columns: str | None
) -> Predictions:
    """`recfit predict`: the run's prediction for each row of the CSV `input` (`.frame`), and `.metrics`
    (plus `.report` for classes) when it has labels; `text_column=` / `label_column=` rename columns."""
    from recfit.inference.predict import predict as run_predict

    return run_predict(path, input, output, **columns)

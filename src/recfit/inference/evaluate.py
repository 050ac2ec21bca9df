"""`recfit eval RUN_DIR [overrides]`: test a run's best checkpoint, into a new evaluation folder.

The folder has the layout of a training run folder (`.hydra/config.yaml`, `.hydra/overrides.yaml`,
`metrics.json`, `per_user.parquet`), so `recfit compare` reads it like any run. It goes to
`<paths.output_dir>/evals/<experiment_name>/<timestamp>/`: beside `runs/`, never inside the
evaluated run (whose folder stays untouched).
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from recfit.config.record import run_identity
from recfit.run_folder import (
    CONFIG_FILE,
    HYDRA_DIR,
    METRICS_FILE,
    OVERRIDES_FILE,
    PER_USER_FILE,
    RunResult,
    Status,
    clean_metrics,
    describe,
    new_record,
    now_iso,
    write_json_atomic,
    write_parquet_atomic,
    write_text_atomic,
)

EVALS_DIR = "evals"


class EvalResult(RunResult):
    """What an evaluation reports: a RunResult whose folder is the evaluation's, under evals/."""

    @property
    def eval_dir(self) -> Path:
        return self.run_dir


def new_eval_dir(output_dir: str, experiment: str) -> Path:
    """A fresh folder (microseconds keep two evaluations started in the same second apart)."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
    folder = Path(output_dir) / EVALS_DIR / experiment / stamp
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def _write_config(folder: Path, cfg: Any, overrides: list[str]) -> None:
    (folder / HYDRA_DIR).mkdir()
    write_text_atomic(folder / CONFIG_FILE, OmegaConf.to_yaml(cfg, resolve=True))
    write_text_atomic(folder / OVERRIDES_FILE, OmegaConf.to_yaml(OmegaConf.create(overrides)))


def _test_loop(loaded: Any, folder: Path) -> tuple[dict[str, float | None], dict[str, Any]]:
    """Lightning's test loop over the loaded model: (test metrics, per-user table)."""
    from hydra.utils import instantiate

    trainer = instantiate(
        loaded.cfg.trainer,
        devices=1,  # evaluation needs no process group
        strategy="auto",
        num_nodes=1,
        logger=False,
        callbacks=[],
        enable_checkpointing=False,
        default_root_dir=str(folder),
    )
    metrics: dict[str, Any] = {}
    for result in trainer.test(loaded.module, datamodule=loaded.datamodule, verbose=False):
        metrics.update(result)
    return clean_metrics(metrics), loaded.module.per_user_table()


def evaluate(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> EvalResult:
    """Evaluate `run_dir`'s best checkpoint on the test split its config (plus `overrides`) defines."""
    from recfit.inference.checkpoint import load_run, read_record

    run_dir = Path(run_dir)
    read_record(run_dir)  # a bad folder is refused before anything heavy is imported
    started, started_at = time.time(), now_iso()
    loaded = load_run(run_dir, list(overrides))
    cfg = loaded.cfg
    folder = new_eval_dir(cfg.paths.output_dir, cfg.experiment_name)
    _write_config(folder, cfg, loaded.overrides)
    record = new_record(folder, run_identity(cfg))
    record.update(
        started_at=started_at,  # loading the model and data counts as part of the evaluation
        kind="eval",
        evaluated_run=str(run_dir.resolve()),
        checkpoint=str(loaded.checkpoint.resolve()),
        eval_overrides=list(overrides),
        transfer=loaded.transfer,
        data=loaded.data.summary(),
        protocol=loaded.protocol,
    )
    write_json_atomic(folder / METRICS_FILE, record)
    try:
        record["metrics"], per_user = _test_loop(loaded, folder)
        write_parquet_atomic(folder / PER_USER_FILE, per_user)
        record["status"] = Status.completed
    except Exception as error:
        record.update(status=Status.failed, error=describe(error))
        raise
    finally:
        record["finished_at"] = now_iso()
        record["duration_s"] = round(time.time() - started, 3)
        write_json_atomic(folder / METRICS_FILE, record)
    return EvalResult(record["status"], record["metrics"], folder, record)

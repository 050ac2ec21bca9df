"""Training a run in this process and reading back what it wrote."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import pytest

# Small synthetic data and one short epoch: the common base of in-process training tests.
SMALL_DATA = [
    "dataset.reader.num_users=40",
    "dataset.reader.num_items=60",
    "dataset.reader.interactions_per_user=8",
]
ONE_EPOCH = ["trainer.max_epochs=1", "trainer.enable_progress_bar=false"]


def run_records(output_dir: Path, kind: str = "runs") -> list[dict]:
    """Every metrics.json under `output_dir/<kind>/`, oldest folder first."""
    return [json.loads(path.read_text()) for path in sorted(output_dir.glob(f"{kind}/*/*/metrics.json"))]


def train(output_dir: Path, *overrides: str, expect: str = "completed") -> dict:
    """`recfit train <overrides>` in this process; returns the metrics.json of the run it made."""
    from recfit.cli import main

    before = set(output_dir.glob("runs/*/*/metrics.json"))
    main(["train", f"paths.output_dir={output_dir}", *overrides])
    (made,) = set(output_dir.glob("runs/*/*/metrics.json")) - before
    record = json.loads(made.read_text())
    assert record["status"] == expect, record.get("error")
    return record


def evaluate(
    overrides: list[str], checkpoint: str, folder: Path, **trainer: object
) -> tuple[dict, pd.DataFrame]:
    """Validation and test metrics of `checkpoint` and the per-user table, from a Trainer set by `trainer`."""
    import lightning.pytorch as pl
    import pandas as pd

    from recfit.config import compose
    from recfit.training.per_user import PerUserWriter
    from recfit.training.run import build

    cfg = compose(overrides)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    built = build(cfg)
    folder.mkdir(parents=True)
    runner = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        deterministic=True,
        callbacks=[PerUserWriter(folder / "per_user.parquet")],
        **trainer,
    )
    metrics: dict = {}
    for stage in (runner.validate, runner.test):
        results = stage(built.module, datamodule=built.datamodule, ckpt_path=checkpoint, weights_only=True)
        for result in results:  # with ddp_spawn: rank 0's results, handed back to this process
            metrics.update({name: float(value) for name, value in result.items()})
    return metrics, pd.read_parquet(folder / "per_user.parquet")


def interrupted_after_step(
    step: int, run: Callable[..., object], outputs: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str
) -> Path:
    """The run folder of `run(outputs, *overrides)` stopped by Ctrl-C after training step `step` (raised
    in the training loop, as tests/test_resume.py does); marked as exited so `resume=auto` takes it."""

    def interrupt(module: object, outputs: object, batch: object, index: int) -> None:
        if module.global_step == step:
            raise KeyboardInterrupt

    return interrupted_in("on_train_batch_end", interrupt, run, outputs, monkeypatch, *overrides)


def interrupted_in(
    hook: str,
    stop: Callable[..., None],
    run: Callable[..., object],
    outputs: Path,
    monkeypatch: pytest.MonkeyPatch,
    *overrides: str,
) -> Path:
    """The run folder of `run(outputs, *overrides)` with RecModule's `hook` replaced by `stop` (which
    raises KeyboardInterrupt, Ctrl-C, where it wants the run stopped); marked as exited so that
    `resume=auto` takes it."""
    import pytest

    from recfit.training.module import RecModule

    with monkeypatch.context() as patch:
        patch.setattr(RecModule, hook, stop, raising=False)
        with pytest.raises(SystemExit):
            run(outputs, *overrides)
    (folder,) = [path.parent for path in outputs.glob("runs/*/*/metrics.json")]
    # resume refuses a run whose process is alive: this test process ran it, so it says it has exited
    record = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**record, "pid": None}))
    return folder

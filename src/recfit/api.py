"""The Python API, mirroring the command line: `recfit.train(...)` and `recfit.load_run(...)`.

    import recfit
    result = recfit.train(overrides=["backbone=tiny_bert", "trainer.max_epochs=1"])
    result.metrics["test/ndcg@10"], result.run_dir
    run = recfit.load_run(result.run_dir)   # run.cfg, run.metrics, run.module, run.datamodule

Heavy imports wait until a function is called, so `import recfit` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from recfit.run_folder import RunResult as TrainResult  # torch-free: paths and JSON only

if TYPE_CHECKING:
    from recfit.inference.checkpoint import LoadedRun
    from recfit.inference.evaluate import EvalResult
    from recfit.inference.predict import Predictions
    from recfit.inference.recommend import Recommendation


def train(overrides: list[str] | tuple[str, ...] = ()) -> TrainResult:
    """Train one run as `recfit train *overrides` would (the same Hydra app, in this process).

    Raises RecfitError (one line) for an invalid config or a run that fails on bad input.
    """
    from recfit.apps import launch
    from recfit.errors import RecfitError
    from recfit.run_folder import read_record

    overrides = list(overrides)
    if any(o.startswith("-") for o in overrides):
        raise RecfitError("recfit.train runs one job: pass key=value overrides only (no -m or flags)")
    if any(o.lstrip("+~").startswith(("resume=", "ckpt_path=", "hydra.run.dir=")) for o in overrides):
        raise RecfitError("recfit.train starts new runs only; resume a run with `recfit train resume=auto`")
    run_dir = launch(overrides, in_process=True)
    assert run_dir is not None  # a single run always has its folder
    record = read_record(run_dir)
    return TrainResult(record["status"], record.get("metrics") or {}, run_dir, record)


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


def recommend(
    run: str | Path | LoadedRun,
    user: str | None = None,
    history: list[str] | str | None = None,
    k: int = 10,
) -> list[Recommendation]:
    """`recfit recommend`: the k best unseen items for `user` (the data set's own id), or for a user not
    in training given as `history` (item ids oldest first, a list or "ID,ID,..."; the run's
    model.user_encoder must read histories). `run`: a run folder, or a `load_run` result (loads once).

    Raises RecfitError (one line) for bad input: both or neither of user / history, an unknown user or
    item, an empty or repeated history, k < 1.
    """
    from recfit.errors import RecfitError
    from recfit.inference.checkpoint import LoadedRun
    from recfit.inference.history import parse_history
    from recfit.inference.recommend import recommend as run_recommend

    if (user is None) == (history is None):
        raise RecfitError("recommend takes exactly one of user= or history=")
    if isinstance(history, str):
        history = parse_history(history)
    loaded = run if isinstance(run, LoadedRun) else load_run(run)
    return run_recommend(loaded, user, k, None if history is None else [str(i) for i in history])

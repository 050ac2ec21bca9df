"""`recfit predict RUN_DIR --input new.csv`: a trained model's prediction for every row of a new file.

- text_classification: the input has the run's text column (`dataset.reader.text_column`); each row gets
  `prediction` (the class name) and one `prob_<class>` column per class (softmax of the logits), or a
  number for `loss=mse` runs.
- rating / ctr: the input has `user` and `item` columns holding the data set's raw ids; each row gets
  `prediction` (the rating; for ctr 0/1 at probability 0.5) and, for ctr, `probability`.

One row out per row in, in input order, every input column kept. When the input also has the target
(the run's label column; `rating`, or for ctr `label` 0/1 or `rating` thresholded as in training),
the metrics are the ones the run reports (same definitions: accuracy, macro-F1; AUC, LogLoss; RMSE,
MAE), plus, for classes, a per-class report and a confusion matrix. Rows whose target cell is empty
get predictions but do not count in the metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recfit.errors import DataError, RecfitError

PREDICTION = "prediction"  # the predicted class name, rating or 0/1 label
PROBABILITY = "probability"  # ctr: the predicted probability of a positive
CLASS_PROBABILITY = "prob_"  # text classification: prob_<class>, one column per trained class
USER_COLUMN, ITEM_COLUMN = "user", "item"  # rating / ctr input: the data set's raw ids
RATING_COLUMN, LABEL_COLUMN = "rating", "label"  # rating / ctr input: optional targets


@dataclass
class ClassReport:
    """Per-class precision, recall, F1, support; the confusion matrix (rows true, columns predicted)."""

    classes: list[str]
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]
    confusion: list[list[int]]

    def as_dict(self) -> dict[str, Any]:
        per_class = {
            name: {"precision": p, "recall": r, "f1": f, "support": s}
            for name, p, r, f, s in zip(
                self.classes, self.precision, self.recall, self.f1, self.support, strict=True
            )
        }
        return {"per_class": per_class, "confusion_matrix": {"classes": self.classes, "rows": self.confusion}}


@dataclass
class Predictions:
    """What `predict` gives: the rows with their predictions, and metrics when the input had targets."""

    frame: pd.DataFrame  # the input's columns, then the prediction columns
    metrics: dict[str, float] = field(default_factory=dict)  # empty without targets
    labelled_rows: int = 0  # rows that count in the metrics
    report: ClassReport | None = None  # text classification with class labels only
    output: Path | None = None  # where the CSV was written, if it was


def read_input(path: str | Path) -> pd.DataFrame:
    """The input CSV, every cell as text (ids keep their spelling); one line for an unusable file."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"input file not found: {file}")
    try:
        frame = pd.read_csv(file, dtype=str, encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{file} is not UTF-8 text: re-save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{file} is empty: nothing to predict") from None
    except pd.errors.ParserError as error:
        raise DataError(f"cannot parse {file}: {str(error).splitlines()[0]}") from None
    if frame.empty:
        raise DataError(f"{file} has a header but no rows: nothing to predict")
    return frame


def _require(frame: pd.DataFrame, column: str, what: str) -> None:
    if column not in frame.columns:
        raise DataError(f"the input has no {what} column '{column}' (columns: {', '.join(frame.columns)})")


def _first_rows(mask: np.ndarray) -> str:
    """'row 3' / 'rows 3, 8, 11 ...' (1-based data rows, the header not counted)."""
    rows = (np.flatnonzero(mask) + 1).tolist()
    shown = ", ".join(map(str, rows[:3])) + (" ..." if len(rows) > 3 else "")
    return f"row{'s' if len(rows) > 1 else ''} {shown}"


def _canonical(value: str) -> str:
    """A label as text, with numbers spelt one way ('1', '1.0' and ' 1' are the same class)."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else repr(number)


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as float64 (NaN where empty); one line if a filled cell is not a number."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & frame[column].notna().to_numpy()
    if bad.any():
        raise DataError(f"column '{column}' must hold numbers: {_first_rows(bad)} do not")
    return values


def _chunks(count: int, size: int) -> list[np.ndarray]:
    return [np.arange(start, min(start + size, count)) for start in range(0, count, size)]


def _metrics(collection: Any, output: Any, target: Any) -> dict[str, float]:
    collection.update(output, target)
    return {name: float(value) for name, value in collection.compute().items()}


def class_report(target: np.ndarray, predicted: np.ndarray, classes: list[str]) -> ClassReport:
    """Per-class precision / recall / F1 / support and the confusion matrix (0 where undefined)."""
    size = len(classes)
    confusion = np.bincount(target * size + predicted, minlength=size * size).reshape(size, size)
    hits = np.diag(confusion).astype(np.float64)
    support = confusion.sum(1)
    predicted_count = confusion.sum(0)
    precision = np.divide(hits, predicted_count, out=np.zeros(size), where=predicted_count > 0)
    recall = np.divide(hits, support, out=np.zeros(size), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(size), where=total > 0)
    return ClassReport(
        classes, precision.tolist(), recall.tolist(), f1.tolist(), support.tolist(), confusion.tolist()
    )


def _predict_texts(loaded: Any, frame: pd.DataFrame, text_column: str, label_column: str) -> Predictions:
    import torch

    from recfit.config.schema import LossName
    from recfit.data.encode import TextContent
    from recfit.evaluation.pointwise import multiclass_metrics, regression_metrics

    _require(frame, text_column, "text")
    missing = frame[text_column].isna().to_numpy()
    if missing.any():
        raise DataError(f"column '{text_column}' is empty in {_first_rows(missing)}: every row needs a text")
    classes = list(loaded.data.label_names or [])
    numeric = loaded.cfg.loss.name == LossName.mse
    labels = None
    if label_column in frame.columns and frame[label_column].notna().any():
        labels = frame[label_column]
        if not numeric:
            known = {_canonical(name): code for code, name in enumerate(classes)}
            filled = labels.notna().to_numpy()
            spelled = [_canonical(value) for value in labels[filled]]
            unseen = sorted(set(spelled) - set(known))
            if unseen:
                raise DataError(
                    f"label{'s' if len(unseen) > 1 else ''} {', '.join(repr(u) for u in unseen)} in column "
                    f"'{label_column}' never occurred in training (classes: {', '.join(classes)})"
                )

    content = loaded.datamodule.item_content
    texts = TextContent(frame[text_column].tolist(), content.tokenizer, content.max_length)
    recommender = loaded.recommender
    outputs = []
    with torch.no_grad():
        for rows in _chunks(len(frame), loaded.datamodule.eval_batch_size):
            outputs.append(recommender({"pair_inputs": texts.batch(rows)}).float())
    output = torch.cat(outputs)
    result = frame.copy()
    if numeric:
        result[PREDICTION] = output.numpy()
        predictions = Predictions(result)
        if labels is not None:
            target = _numbers(frame, label_column)
            rows = ~np.isnan(target)
            predictions.metrics = _metrics(
                regression_metrics(), output[rows].double(), torch.as_tensor(target[rows])
            )
            predictions.labelled_rows = int(rows.sum())
        return predictions

    probabilities = torch.softmax(output, dim=-1)
    predicted = probabilities.argmax(-1).numpy()
    result[PREDICTION] = np.asarray(classes, dtype=object)[predicted]
    for code, name in enumerate(classes):
        result[f"{CLASS_PROBABILITY}{name}"] = probabilities[:, code].numpy()
    predictions = Predictions(result)
    if labels is not None:
        filled = labels.notna().to_numpy()
        target = np.asarray([known[_canonical(value)] for value in labels[filled]], dtype=np.int64)
        predictions.metrics = _metrics(
            multiclass_metrics(len(classes)), output[torch.as_tensor(filled)], torch.as_tensor(target)
        )
        predictions.labelled_rows = int(filled.sum())
        predictions.report = class_report(target, predicted[filled], classes)
    return predictions


def _codes(
    ids: np.ndarray | None, count: int, frame: pd.DataFrame, column: str, data_name: str
) -> np.ndarray:
    """The dense codes of a column of raw ids; one line naming the first unknown ones."""
    _require(frame, column, "id")
    raw = [str(i) for i in ids] if ids is not None else [str(code) for code in range(count)]
    lookup = {name: code for code, name in enumerate(raw)}
    spelled = frame[column].fillna("").str.strip()
    codes = spelled.map(lookup)
    if codes.isna().any():  # '1.0' for id 1 (a column written by pandas after a missing value)
        canonical = {_canonical(name): code for code, name in reversed(list(enumerate(raw)))}
        codes = codes.fillna(spelled.map(_canonical).map(canonical))
    unknown = codes.isna().to_numpy()
    if unknown.any():
        names = ", ".join(repr(v) for v in dict.fromkeys(spelled[unknown].tolist()[:3]))
        raise DataError(
            f"{column} {names} ({_first_rows(unknown)}) unknown to the run's data set '{data_name}' "
            f"({count:,} {column}s): a trained model predicts for the {column}s it was trained on"
        )
    return codes.to_numpy(dtype=np.int64)


def _predict_pairs(loaded: Any, frame: pd.DataFrame, task: Any) -> Predictions:
    import torch

    from recfit.data.datamodule import InteractionCollator

    data, datamodule = loaded.data, loaded.datamodule
    users = _codes(data.user_ids, data.num_users, frame, USER_COLUMN, data.name)
    items = _codes(data.item_ids, data.num_items, frame, ITEM_COLUMN, data.name)
    pairs = pd.DataFrame({"user": users, "item": items})
    collate = InteractionCollator(
        pairs,
        np.zeros(len(pairs), np.float32),
        datamodule.inputs,
        datamodule.item_content,
        datamodule.user_content,
    )
    outputs = []
    with torch.no_grad():
        for rows in _chunks(len(frame), datamodule.eval_batch_size):
            outputs.append(loaded.recommender(collate(rows.tolist())).float())
    output = torch.cat(outputs)
    result = frame.copy()
    ctr = task.over_classes()  # a pair's label is clicked or not (recfit.tasks.ctr)
    target = None
    if ctr:
        output = task.prediction(output)
        result[PROBABILITY] = output.numpy()
        result[PREDICTION] = (output >= 0.5).long().numpy()
        if LABEL_COLUMN in frame.columns:
            target = _numbers(frame, LABEL_COLUMN)
            bad = ~np.isnan(target) & ~np.isin(target, (0.0, 1.0))
            if bad.any():
                raise DataError(f"column '{LABEL_COLUMN}' must hold 0 or 1: {_first_rows(bad)} do not")
        elif RATING_COLUMN in frame.columns:
            ratings = _numbers(frame, RATING_COLUMN)
            threshold = float(loaded.cfg.task.rating_threshold)
            target = np.where(np.isnan(ratings), np.nan, (ratings >= threshold).astype(np.float64))
    else:
        result[PREDICTION] = output.numpy()
        if RATING_COLUMN in frame.columns:
            target = _numbers(frame, RATING_COLUMN)
    predictions = Predictions(result)
    if target is not None and not np.isnan(target).all():
        rows = ~np.isnan(target)
        kept = output[torch.as_tensor(rows)]
        if ctr:
            values = _metrics(task.new_metrics(2), kept, torch.as_tensor(target[rows]).long())
        else:
            values = _metrics(task.new_metrics(0), kept.double(), torch.as_tensor(target[rows]))
        predictions.metrics = {k: v for k, v in values.items() if not math.isnan(v)}
        predictions.labelled_rows = int(rows.sum())
    return predictions


def predict_frame(
    loaded: Any, frame: pd.DataFrame, text_column: str | None = None, label_column: str | None = None
) -> Predictions:
    """Predictions of a loaded run for the rows of `frame` (cells as text, as `read_input` gives them)."""
    from recfit.config.multitask import task_list
    from recfit.tasks.base import TaskShape
    from recfit.tasks.registry import make_task

    if task_list(loaded.cfg):
        raise RecfitError(
            "predict supports single-task runs; this multi-task run predicts one output per task"
        )
    task = make_task(loaded.cfg.task.name, loaded.cfg.task, loaded.cfg.loss.name)
    added = {PREDICTION, PROBABILITY} | {
        f"{CLASS_PROBABILITY}{name}" for name in loaded.data.label_names or []
    }
    clash = [column for column in frame.columns if column in added]
    if clash:
        raise DataError(f"the input already has a column '{clash[0]}', which predict would write")
    if task.shape == TaskShape.row_label:
        dataset = loaded.cfg.dataset
        return _predict_texts(
            loaded,
            frame,
            text_column or dataset.reader.text_column,
            label_column or dataset.reader.label_column,
        )
    if task.shape == TaskShape.pair_score:
        return _predict_pairs(loaded, frame, task)
    raise RecfitError(
        f"predict scores given rows (text_classification, rating, ctr); a {task.name} run ranks items: "
        "use `recfit recommend RUN_DIR --user ID`"
    )


def write_predictions(frame: pd.DataFrame, output: Path) -> Path:
    """Write the predictions CSV atomically (a reader never sees half a file)."""
    from recfit.run_folder import replace_atomic

    output = output.expanduser()
    if not output.parent.is_dir():
        raise DataError(f"cannot write {output}: folder {output.parent} does not exist")
    replace_atomic(output, lambda temporary: frame.to_csv(temporary, index=False))
    return output


def predict(
    run_dir: str | Path,
    input_path: str | Path,
    output: str | Path | None = None,
    text_column: str | None = None,
    label_column: str | None = None,
) -> Predictions:
    """Load a completed run and predict every row of the CSV `input_path` (see the module docstring).

    `output`: also write the rows with their predictions there (CSV). The run folder is only read.
    """
    from recfit.inference.checkpoint import load_run, read_record

    run_dir = Path(run_dir)
    read_record(run_dir)  # a bad folder or input is refused before torch is imported
    frame = read_input(input_path)
    if output is not None and Path(output).expanduser().resolve() == Path(input_path).expanduser().resolve():
        raise RecfitError(f"--output {output} is the input file: predictions never overwrite their input")
    predictions = predict_frame(load_run(run_dir), frame, text_column, label_column)
    if output is not None:
        predictions.output = write_predictions(predictions.frame, Path(output))
    return predictions

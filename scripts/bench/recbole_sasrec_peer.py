"""RecBole 1.2.1's SASRec as a peer, through ../shared/peers/recbole/run.py (run it in RecBole's venv).

Called by bench_sasrec_vs_recbole.py with the interpreter of the venv that
../shared/peers/recbole/run.sh setup makes. It imports the peer's run.py (same instrumentation:
seconds of every training epoch and of every full-ranking evaluation, whole process) and adds what a
speed comparison needs and run.py does not record:

  * the number of training rows (RecBole's augmented prefixes) and of items (padding item 0 included),
    so that train samples/s = rows trained / training seconds;
  * --max-train-batches N: train only the first N batches of each epoch (RecBole has no such option;
    every SASRec step has the same shape, 2048 rows x 50 positions, so N steps time an epoch's rate);
  * --games DIR: Amazon Games (LLMRank's Games-6k) as ONE RecBole .inter file, rebuilt from
    DIR/Games-6k.test.inter (each row's history + target is the user's whole sequence) with the
    position in the sequence as timestamp, so RecBole's own augmentation and `LS valid_and_test`,
    `TO` split produce the leave-one-out rows. The converted file goes under --workdir-root, never
    into the repository. (A pre-split `benchmark_filename` load would need Games-6k.train.inter,
    which the shared copy lacks; RecBole then also skips its augmentation and reads the files' rows.)
    --check-games verifies, before training, that RecBole's validation and test rows equal the files'
    own histories and targets for every user.
  * --test-every-epoch: after each epoch's validation, also the test metrics of the model as it is
    then (RecBole's unwrapped Trainer.evaluate, so run.py's evaluation timings do not include it; it
    draws no random numbers, so training is unchanged). One run of E epochs then gives the test
    metrics of every budget 1..E (a budget's model = its best validation epoch so far).

Everything else (model, --set overrides, seeds) passes through to run.py unchanged. Prints run.py's
JSON line with the fields above added.

usage: ~/.venvs/recbole/bin/python scripts/bench/recbole_sasrec_peer.py --tag T --model SASRec
       --dataset ml-100k --set train_neg_sample_args=None --set valid_metric=NDCG@10 [--set epochs=20]
       [--max-train-batches N] [--games DIR [--check-games]] [--out FILE] [--peer .../run.py]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import itertools
import json
import os
import sys
import time
from pathlib import Path

PEER = Path(__file__).resolve().parents[3] / "shared" / "peers" / "recbole" / "run.py"
GAMES_NAME = "games-6k"


class FirstBatches:
    """A RecBole training loader cut to its first `limit` batches; counts the rows it hands out."""

    def __init__(self, loader, limit: int | None, counter: dict) -> None:
        self._loader, self._limit, self._counter = loader, limit, counter

    def __len__(self) -> int:
        return len(self._loader) if self._limit is None else min(self._limit, len(self._loader))

    def __iter__(self):
        for batch in itertools.islice(iter(self._loader), len(self)):
            self._counter["rows"] += len(batch)
            yield batch

    def __getattr__(self, name: str):
        return getattr(self._loader, name)


def convert_games(source: Path, data_path: Path) -> Path:
    """Games-6k.test.inter -> data_path/games-6k/games-6k.inter: (user, item, position) rows."""
    out_dir = data_path / GAMES_NAME
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{GAMES_NAME}.inter"
    with (
        open(source / "Games-6k.test.inter", encoding="utf-8") as src,
        open(out, "w", encoding="utf-8") as dst,
    ):
        next(src)
        dst.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for line in src:
            user, history, target = line.rstrip("\n").split("\t")
            for position, item in enumerate([*history.split(" "), target]):
                dst.write(f"{user}\t{item}\t{position}\n")
    return out


def file_rows(path: Path) -> dict[str, tuple[tuple[str, ...], str]]:
    """user -> (history, target) of a Games-6k .inter file."""
    rows = {}
    with open(path, encoding="utf-8") as handle:
        next(handle)
        for line in handle:
            user, history, target = line.rstrip("\n").split("\t")
            rows[user] = (tuple(history.split(" ")), target)
    return rows


def check_games_rows(split_data, dataset, source: Path) -> dict:
    """RecBole's valid/test rows (tokens) against Games-6k.{valid,test}.inter, every user."""
    checked = {}
    for name, loader in zip(("valid", "test"), split_data[1:], strict=True):
        expected = file_rows(source / f"Games-6k.{name}.inter")
        inter = loader._dataset.inter_feat
        users = dataset.id2token("user_id", inter["user_id"].numpy())
        targets = dataset.id2token("item_id", inter["item_id"].numpy())
        lists, lengths = inter["item_id_list"].numpy(), inter["item_length"].numpy()
        mismatched = 0
        for row, user in enumerate(users):
            history = tuple(dataset.id2token("item_id", lists[row, : lengths[row]]))
            mismatched += expected.get(user) != (history, targets[row])
        checked[name] = {"rows": len(users), "file_rows": len(expected), "mismatched": int(mismatched)}
        if mismatched or len(users) != len(expected):
            sys.exit(f"recbole_sasrec_peer: RecBole's {name} rows differ from the files: {checked[name]}")
    return checked


def load_peer(path: Path):
    spec = importlib.util.spec_from_file_location("recbole_peer_run", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-train-batches", type=int, default=None, help="train only N batches per epoch")
    parser.add_argument("--games", type=Path, default=None, help="folder with Games-6k.test.inter")
    parser.add_argument(
        "--check-games", action="store_true", help="compare RecBole's eval rows with the files"
    )
    parser.add_argument("--peer", type=Path, default=PEER, help="../shared/peers/recbole/run.py")
    parser.add_argument("--test-every-epoch", action="store_true", help="test metrics after every epoch")
    parser.add_argument("--out", type=Path, default=None, help="also append the JSON line to this file")
    args, passthrough = parser.parse_known_args()
    peer = load_peer(args.peer)  # sets its process clock first

    import recbole.quick_start.quick_start as quick_start
    from recbole.trainer import Trainer

    extra: dict = {"max_train_batches": args.max_train_batches}
    counter = {"rows": 0}
    original_epoch = Trainer._train_epoch

    def limited_epoch(self, train_data, *rest, **kwargs):
        return original_epoch(
            self, FirstBatches(train_data, args.max_train_batches, counter), *rest, **kwargs
        )

    Trainer._train_epoch = limited_epoch  # run.py wraps this one, so its epoch seconds cover it

    original_evaluate, original_valid_epoch = Trainer.evaluate, Trainer._valid_epoch
    split_loaders: dict = {}
    per_epoch: list[dict] = []

    def valid_then_test(self, valid_data, *rest, **kwargs):
        result = original_valid_epoch(self, valid_data, *rest, **kwargs)
        started = time.perf_counter()
        tested = original_evaluate(self, split_loaders["test"], load_best_model=False)
        per_epoch.append(
            {
                "valid_score": float(result[0]),
                "test": {name: float(value) for name, value in tested.items()},
                "test_eval_s": time.perf_counter() - started,
            }
        )
        return result

    if args.test_every_epoch:
        Trainer._valid_epoch = valid_then_test

    original_preparation = quick_start.data_preparation

    def recorded_preparation(config, dataset):
        split_data = original_preparation(config, dataset)
        split_loaders["test"] = split_data[2]
        extra["train_rows"] = len(split_data[0]._dataset)
        extra["num_items_with_padding"] = int(dataset.item_num)
        extra["num_users_with_padding"] = int(dataset.user_num)
        if args.check_games:
            extra["games_rows_checked"] = check_games_rows(split_data, dataset, args.games)
        return split_data

    quick_start.data_preparation = recorded_preparation

    if args.games is not None:
        root = next((passthrough[i + 1] for i, a in enumerate(passthrough) if a == "--workdir-root"), None)
        root = Path(root or os.path.join(os.environ.get("TMPDIR", "/tmp"), "recbole_runs"))
        data_path = (root / "data").resolve()
        convert_games(args.games, data_path)
        passthrough += [
            "--dataset",
            GAMES_NAME,
            "--data-path",
            str(data_path),
            "--set",
            "load_col={'inter': ['user_id', 'item_id', 'timestamp']}",
        ]

    sys.argv = [str(args.peer), *passthrough]
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        peer.main()
    record = json.loads(captured.getvalue().strip().splitlines()[-1])
    record.update(extra)
    record["rows_trained"] = counter["rows"]
    if args.test_every_epoch:
        record["per_epoch"] = per_epoch
    train_s = record["train_total_s"]
    record["train_samples_per_s"] = counter["rows"] / train_s if train_s else None
    record["wrapper_process_wall_s"] = time.perf_counter() - peer.T_PROCESS0
    line = json.dumps(record)
    print(line)
    if args.out is not None:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    main()

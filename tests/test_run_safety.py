"""No run is lost: a disk that fills up (on a real, small file system), two resumes started at once,
a DDP run resumed in the middle of an epoch.

A full disk is a real tmpfs mounted with a size limit (root, or CAP_SYS_ADMIN; skipped elsewhere),
filled by a file that takes every free byte at a chosen moment of a run: the run must end with one
line naming the file it could not write, without replacing any good file by a partial one, and
without touching the other runs in the same output folder.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import ModelCheckpoint

from helpers.cli import assert_one_line_error, run_cli
from helpers.files import REPO, tree_digest
from helpers.runs import SMALL_DATA, interrupted_after_step, train
from recfit.run_folder import LOCK_FILE

# MF on 40 users: 8 training steps an epoch, a checkpoint every 2
RUN = [
    "backbone=none", "model=mf", *SMALL_DATA, "dataset.batch_size=32", "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false", "checkpoint_every_n_steps=2", "experiment_name=safety",
]  # fmt: skip
STOP_AT_STEP = 5  # the first attempt is stopped (SIGTERM or Ctrl-C) in its first epoch, after this step

# The first attempt of a run, stopped by SIGTERM after a given step, in a process of its own (so that
# its pid is dead afterwards, as a resume requires, and this process holds no file open on a small disk
# that the disk tests fill to the last byte).
STOPPED = """
import os, signal, sys
from recfit.cli import main
from recfit.training.module import RecModule

def stop(module, outputs, batch, index):
    if module.global_step == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGTERM)

RecModule.on_train_batch_end = stop
main(["train", *sys.argv[2:]])
"""


def stopped_run(outputs: Path) -> Path:
    """A run stopped by SIGTERM after STOP_AT_STEP: status interrupted, with a last.ckpt to resume from."""
    result = subprocess.run(
        [sys.executable, "-c", STOPPED, str(STOP_AT_STEP), *RUN, f"paths.output_dir={outputs}"],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-2000:]
    (run,) = [p.parent for p in outputs.glob("runs/*/*/metrics.json")]
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    return run


# ---------------------------------------------------------------------------------------------- a full disk


def mount_small_disk(folder: Path, size: str = "24m") -> None:
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a size-limited tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr}")


def fill(disk: Path) -> None:
    """Take every free byte of `disk` (as another program writing there would)."""
    handle = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    chunk = 1 << 20
    try:
        while chunk:
            try:
                os.write(handle, bytes(chunk))
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    finally:
        os.close(handle)


def test_an_output_folder_on_a_read_only_disk_is_refused_before_anything_runs(tmp_path, capsys):
    """Root may write anywhere by permissions, but not on a read-only file system: the one way to test an
    unwritable `paths.output_dir` here. One line, exit 2, nothing written."""
    disk = tmp_path / "read_only"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a read-only tmpfs here (needs root or CAP_SYS_ADMIN): {mounted.stderr!r}")
    try:
        result = run_cli(capsys, "train", f"paths.output_dir={disk / 'outputs'}", *SMALL_DATA)
        assert_one_line_error(result, "is not writable")
        assert result.returncode == 2 and not any(disk.iterdir())
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture(scope="module")
def disk(tmp_path_factory) -> Iterator[Path]:
    """A 24 MiB tmpfs holding one completed run and one stopped run (`outputs/runs/safety/*`)."""
    disk = tmp_path_factory.mktemp("full") / "disk"
    mount_small_disk(disk)
    try:
        outputs = disk / "outputs"
        stopped_run(outputs)
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def full_disk(disk: Path, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(the disk, its stopped run); each test gets the stopped run as it was, and the disk freed after."""
    (run,) = list((disk / "outputs" / "runs").glob("*/*"))
    saved = tmp_path / "saved"
    shutil.copytree(run, saved)
    try:
        yield disk, run
    finally:
        (disk / "filler").unlink(missing_ok=True)
        shutil.rmtree(run)
        shutil.copytree(saved, run)


def wrap(monkeypatch: pytest.MonkeyPatch, owner: object, name: str, before: Callable[..., None]) -> None:
    """Call `before(*arguments)` each time `owner.name` is called, then the real `owner.name`."""
    real = getattr(owner, name)

    def wrapped(*arguments, **keywords):
        before(*arguments)
        return real(*arguments, **keywords)

    monkeypatch.setattr(owner, name, wrapped)


def no_partial_files(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def test_a_new_run_on_a_full_disk_is_refused_in_one_line_and_touches_no_other_run(full_disk, capsys):
    disk, stopped = full_disk
    before = tree_digest(stopped)
    fill(disk)
    result = run_cli(capsys, "train", *RUN, f"paths.output_dir={disk / 'outputs'}")
    assert_one_line_error(result, "no space left on device while writing")
    assert tree_digest(stopped) == before
    assert list(stopped.parent.iterdir()) == [stopped]  # no empty folder left for the refused run


def test_a_full_disk_at_the_start_of_a_resume_leaves_the_run_as_it_was(full_disk, capsys):
    disk, run = full_disk
    before = tree_digest(run, ignore=(LOCK_FILE,))  # taking the lock writes a new pid into .lock
    fill(disk)
    result = run_cli(capsys, "train", *RUN, f"paths.output_dir={disk / 'outputs'}", "resume=auto")
    assert_one_line_error(result, "no space left on device while writing")
    assert str(run / ".hydra") in result.stderr  # Hydra rewrites .hydra/ first
    (disk / "filler").unlink()
    # .hydra/ and last.ckpt whole: the run can still be resumed
    assert tree_digest(run, ignore=(LOCK_FILE,)) == before
    no_partial_files(run)


def test_a_full_disk_while_checkpointing_keeps_the_last_good_checkpoint(full_disk, capsys, monkeypatch):
    disk, run = full_disk
    last = run / "checkpoints" / "last.ckpt"
    good = last.read_bytes()
    wrap(monkeypatch, ModelCheckpoint, "_save_checkpoint", lambda *_: fill(disk))
    result = run_cli(capsys, "train", *RUN, f"paths.output_dir={disk / 'outputs'}", "resume=auto")
    assert_one_line_error(result, f"no space left on device while writing {last}")
    assert result.returncode == 1
    assert last.read_bytes() == good  # never replaced by a partial file
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "failed" and "no space left on device" in record["error"]
    no_partial_files(run)


def test_a_full_disk_while_writing_results_fails_the_run_and_keeps_earlier_runs(
    full_disk, capsys, monkeypatch
):
    from recfit.training.per_user import PerUserWriter

    disk, stopped = full_disk
    outputs = disk / "outputs"
    before = tree_digest(stopped, ignore=(LOCK_FILE,))
    wrap(monkeypatch, PerUserWriter, "on_test_epoch_end", lambda *_: fill(disk))
    result = run_cli(capsys, "train", *RUN, "trainer.max_epochs=1", f"paths.output_dir={outputs}")
    assert_one_line_error(result, "no space left on device while writing")
    assert result.returncode == 1
    (run,) = [p for p in (outputs / "runs" / "safety").iterdir() if p != stopped]
    try:
        assert f"{run / 'per_user.parquet'}" in result.stderr
        assert not (run / "per_user.parquet").exists()
        record = json.loads((run / "metrics.json").read_text())  # whole, from the space set aside
        assert record["status"] == "failed" and "no space left on device" in record["error"]
        no_partial_files(run)
        assert tree_digest(stopped, ignore=(LOCK_FILE,)) == before
    finally:
        (disk / "filler").unlink(missing_ok=True)
        shutil.rmtree(run)


def test_a_full_disk_while_saving_curves_keeps_metrics_csv_whole(full_disk, capsys, monkeypatch):
    """Lightning's CSV logger appends to metrics.csv in place (on a full disk: as much of the new rows
    as fits in the file's last block, then an OSError); the curves must stay as last saved."""
    from lightning.pytorch.loggers import CSVLogger

    disk, stopped = full_disk
    outputs = disk / "outputs"
    saved: list[bytes] = []

    def fill_once_curves_exist(logger: CSVLogger) -> None:
        curves = Path(logger.log_dir) / "metrics.csv"
        if not saved and curves.is_file() and logger.experiment.metrics:
            saved.append(curves.read_bytes())
            fill(disk)

    wrap(monkeypatch, CSVLogger, "save", fill_once_curves_exist)
    result = run_cli(capsys, "train", *RUN, f"paths.output_dir={outputs}")
    (run,) = [p for p in (outputs / "runs" / "safety").iterdir() if p != stopped]
    try:
        assert saved, "metrics.csv was saved only once"
        assert_one_line_error(result, f"no space left on device while writing {run / 'metrics.csv'}")
        assert (run / "metrics.csv").read_bytes() == saved[0]
        assert json.loads((run / "metrics.json").read_text())["status"] == "failed"
        no_partial_files(run)
    finally:
        (disk / "filler").unlink(missing_ok=True)
        shutil.rmtree(run)


# ---------------------------------------------------------------------------------------------- a race


@pytest.fixture(scope="module")
def alone(tmp_path_factory) -> dict:
    """metrics.json of the run never stopped: what every resumed run must end with."""
    return train(tmp_path_factory.mktemp("alone"), *RUN)


def resume_command(outputs: Path) -> list[str]:
    return [sys.executable, "-m", "recfit", "train", *RUN, f"paths.output_dir={outputs}", "resume=auto"]


@pytest.mark.slow
def test_two_resumes_started_at_once_one_runs_the_other_is_refused(tmp_path, alone, monkeypatch):
    outputs = tmp_path / "raced"
    run = interrupted_after_step(STOP_AT_STEP, train, outputs, monkeypatch, *RUN)
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "cwd": REPO}
    both = [
        subprocess.Popen(resume_command(outputs), **pipes),
        subprocess.Popen(resume_command(outputs), **pipes),
    ]
    results = []
    for process in both:
        out, err = process.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    assert sorted(r.returncode for r in results) == [0, 2], [r.stderr[-2000:] for r in results]
    (refused,) = [r for r in results if r.returncode == 2]
    # refused while the other one runs, or (if it came late) because the other one has completed the run
    assert_one_line_error(refused, "")
    assert "is in use by another recfit process" in refused.stderr or "has completed" in refused.stderr
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "completed" and record["metrics"] == alone["metrics"]


@pytest.mark.slow
def test_a_resume_that_gets_the_lock_after_another_completed_the_run_is_refused(
    tmp_path, alone, capsys, monkeypatch
):
    """The later of two resumes found the run unfinished, then waited: the other one completed it."""
    import recfit.run_folder

    outputs = tmp_path / "late"
    run = interrupted_after_step(STOP_AT_STEP, train, outputs, monkeypatch, *RUN)
    finished: list[subprocess.CompletedProcess] = []

    def the_other_resume_runs_first(*_):
        finished.append(subprocess.run(resume_command(outputs), capture_output=True, text=True, cwd=REPO))

    wrap(monkeypatch, recfit.run_folder, "owned", the_other_resume_runs_first)
    late = run_cli(capsys, "train", *RUN, f"paths.output_dir={outputs}", "resume=auto")
    assert finished[0].returncode == 0, finished[0].stderr[-2000:]
    assert_one_line_error(late, "has completed; a finished run is never resumed")
    assert late.returncode == 2
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "completed" and record["metrics"] == alone["metrics"]


# ---------------------------------------------------------------------------------------------- DDP resume


@pytest.mark.parametrize("rank", [0, 1])
def test_a_loader_dealt_out_to_two_processes_resumes_its_own_remaining_batches(rank):
    """Lightning's DDP deals the epoch's rows out with a DistributedSamplerWrapper around the sampler."""
    from lightning.fabric.utilities.distributed import DistributedSamplerWrapper

    from recfit.data.resumable import EpochSampler, ResumableLoader

    def loader() -> ResumableLoader:
        dealt = DistributedSamplerWrapper(EpochSampler(43, seed=2), num_replicas=2, rank=rank, shuffle=False)
        return ResumableLoader(list(range(43)), batch_size=4, sampler=dealt, collate_fn=list)

    alone = loader()
    alone.sampler.set_epoch(1)
    uninterrupted = list(alone)  # 22 of the 43 rows (one padded): 6 batches
    stopped = loader()
    stopped.sampler.set_epoch(1)
    served = iter(stopped)
    first = [next(served), next(served)]
    resumed = loader()
    resumed.load_state_dict(stopped.state_dict())
    assert first + list(resumed) == uninterrupted


# Two CPU processes: 256 training rows, 128 a process, 8 steps an epoch; a checkpoint every 3 steps.
# No test phase (each ddp_spawn phase starts two fresh processes): the best checkpoint's weights, all
# compared, decide the test metrics, and it holds the validation metrics the run records.
DDP_RUN = [*RUN, "trainer=ddp_cpu", "dataset.batch_size=16", "checkpoint_every_n_steps=3", "test=false"]
# The first attempt crashes in both processes after step 13: its last.ckpt is step 12, half-way into
# the second epoch. A script file, so that the spawned processes (which import it again) crash too.
CRASH_AFTER_STEP = """
import sys
from recfit.training.module import RecModule

def crash(module, outputs, batch, index):
    if module.global_step == 13:
        raise RuntimeError("the test stops this run here")

RecModule.on_train_batch_end = crash
if __name__ == "__main__":
    from recfit.cli import main
    main(["train", *sys.argv[1:]])
"""


@pytest.mark.slow
def test_ddp_resumed_mid_epoch_ends_like_the_run_left_alone(tmp_path, monkeypatch):
    import torch

    alone = train(tmp_path / "alone", *DDP_RUN)
    # Lightning left the port it used in this process's environment: each launch below picks a free one
    monkeypatch.delenv("MASTER_PORT", raising=False)
    outputs = tmp_path / "crashed"
    script = tmp_path / "crash_after_step.py"
    script.write_text(CRASH_AFTER_STEP)
    crashed = subprocess.run(
        [sys.executable, str(script), *DDP_RUN, f"paths.output_dir={outputs}"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert crashed.returncode == 1, crashed.stderr[-2000:]
    (run,) = list(outputs.glob("runs/*/*"))
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 12  # mid-epoch: 4 of 8 batches served

    from recfit.cli import main

    main(["train", *DDP_RUN, f"paths.output_dir={outputs}", f"ckpt_path={last}"])
    resumed = json.loads((run / "metrics.json").read_text())
    assert resumed["status"] == "completed", resumed["error"]
    assert alone["metrics"] and all(name.startswith("val/") for name in alone["metrics"])
    assert resumed["metrics"] == alone["metrics"]
    weights = [
        torch.load(Path(r["best_checkpoint"]), weights_only=True)["state_dict"] for r in (alone, resumed)
    ]
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])

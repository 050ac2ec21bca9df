"""A run stopped in any phase (SIGKILL, SIGTERM, a real Ctrl-C) and resumed ends exactly like the run
left alone; one process at a time owns a run folder."""

from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers.cli import assert_one_line_error, run_cli
from helpers.files import REPO, tree_digest
from helpers.runs import train
from recfit.run_folder import LOCK_FILE

# dropout in the tiny BERT and the projection, BPR's sampled negatives, shuffling: every kind of
# randomness a resumed run has to replay. Three epochs: a run stopped inside the second one resumes
# mid-epoch, then starts a fresh one; evaluation batches of 16: several of them to stop in.
RUN = [
    "backbone=tiny_bert", "loss=bpr", "trainer.max_epochs=3", "trainer.enable_progress_bar=false",
    "checkpoint_every_n_steps=7", "dataset.batch_size=16", "dataset.eval_batch_size=16",
    "dataset.reader.num_users=100", "seed=5",
]  # fmt: skip
STEPS_PER_EPOCH = 60  # 100 users x 12 interactions, 80% in train, batches of 16


def final(outputs: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    (run,) = [p.parent for p in outputs.glob("runs/*/*/metrics.json")]
    record = json.loads((run / "metrics.json").read_text())
    weights = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    return record, weights


def global_step(checkpoint: Path) -> int:
    try:
        return torch.load(checkpoint, weights_only=True)["global_step"]
    except Exception:  # not there yet
        return -1


@pytest.fixture(scope="module")
def alone(tmp_path_factory) -> tuple[dict, dict[str, torch.Tensor]]:
    """The same run, never stopped (in this process): what every stopped run, resumed, must end with."""
    outputs = tmp_path_factory.mktemp("alone")
    train(outputs, *RUN)
    return final(outputs)


def stop_mid_epoch(outputs: Path, stop: signal.Signals) -> tuple[subprocess.Popen, int, int]:
    """Start the run and send `stop` once a checkpoint well inside its second epoch exists.

    Returns the process, the step of that checkpoint and its modification time (ns) when `stop` was sent.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "recfit", "train", *RUN, f"paths.output_dir={outputs}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
    )  # fmt: skip
    deadline, step, written = time.time() + 300, -1, 0
    while time.time() < deadline and process.poll() is None:
        found = list(outputs.glob("runs/*/*/checkpoints/last.ckpt"))
        written = found[0].stat().st_mtime_ns if found else 0
        step = global_step(found[0]) if found else -1
        if step >= STEPS_PER_EPOCH + 20:
            assert locked(found[0].parent.parent), "a running run holds its folder's lock"
            process.send_signal(stop)
            break
        time.sleep(0.05)
    process.wait(timeout=300)
    return process, step, written


def locked(run: Path) -> bool:
    """Whether some process holds the run folder's lock (as `recfit train` does for the whole run)."""
    with open(run / LOCK_FILE) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def assert_same_end(alone: tuple[dict, dict[str, torch.Tensor]], outputs: Path) -> None:
    (record_alone, weights_alone), (record_resumed, weights_resumed) = alone, final(outputs)
    assert record_resumed["status"] == "completed"
    assert record_resumed["metrics"] == record_alone["metrics"]
    assert weights_alone.keys() == weights_resumed.keys()
    assert all(torch.equal(weights_alone[k], weights_resumed[k]) for k in weights_alone)


def resume(capsys: pytest.CaptureFixture, outputs: Path) -> None:
    """`recfit train ... resume=auto` in this process (the stopped run's own process has ended)."""
    resumed = run_cli(capsys, "train", *RUN, f"paths.output_dir={outputs}", "resume=auto")
    assert resumed.returncode == 0, resumed.stderr[-2000:]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_auto_is_exact(tmp_path, alone, capsys):
    outputs = tmp_path / "killed"
    process, step, _ = stop_mid_epoch(outputs, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert step % STEPS_PER_EPOCH != 0  # a mid-epoch checkpoint

    resume(capsys, outputs)
    assert_same_end(alone, outputs)
    curves = [
        pd.read_csv(Path(alone[0]["run_dir"]) / "metrics.csv"),
        pd.read_csv(next(outputs.glob("runs/*/*/metrics.csv"))),
    ]
    assert curves[1]["epoch"].min() == 0  # the curves logged before the kill are kept
    epoch_ends = [c.dropna(subset=["val/ndcg@10"])["val/ndcg@10"].round(6).tolist() for c in curves]
    assert epoch_ends[0] == epoch_ends[1]

    # the run is finished now: nothing left to resume, and its checkpoint cannot be resumed either
    again = run_cli(capsys, "train", *RUN, f"paths.output_dir={outputs}", "resume=auto")
    assert_one_line_error(again, "resume=auto: no unfinished run with a checkpoint under")
    (run,) = [p.parent for p in outputs.glob("runs/*/*/metrics.json")]
    assert not (run / "checkpoints" / "last.ckpt").exists()  # checkpoint.keep=best: no stale resume state
    explicit = run_cli(capsys, "train", *RUN, f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}")
    assert_one_line_error(explicit, "has completed; a finished run is never resumed")


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "real_sigint"])
def test_sigterm_or_ctrl_c_saves_a_checkpoint_marks_the_run_interrupted_and_resumes_exactly(
    tmp_path, alone, stop, capsys
):
    """SIGTERM (a preemption) and Ctrl-C (SIGINT, sent for real) stop after a step, with last.ckpt."""
    outputs = tmp_path / stop.name
    process, _, periodic_written = stop_mid_epoch(outputs, stop)
    assert process.returncode == 128 + stop
    (run,) = [p.parent for p in outputs.glob("runs/*/*/metrics.json")]
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    # rewritten at the signal, after the periodic checkpoint seen when it was sent (its step alone cannot
    # show this: Lightning may stop on a step that is also a periodic one, every 7th)
    assert (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns > periodic_written
    assert not locked(run)

    resume(capsys, outputs)
    assert_same_end(alone, outputs)


# Stopping in the other phases: the run sends itself SIGTERM at a fixed point of one phase
STOP_AT = """
import os, signal, sys
from recfit.cli import main
from recfit.training import run
from recfit.training.module import RecModule

phase = sys.argv[1]
stop = lambda: os.kill(os.getpid(), signal.SIGTERM)
if phase == "validation":  # the validation at the end of the first epoch
    def hook(self, batch, index, dataloader_index=0):
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking and index == 1:
            stop()
    RecModule.on_validation_batch_start = hook
elif phase == "test":
    RecModule.on_test_batch_start = lambda self, batch, index, dataloader_index=0: index == 1 and stop()
elif phase == "results":  # as the final metrics.json is written
    write = run._write_outcome
    run._write_outcome = lambda *arguments: (stop(), write(*arguments))
elif phase == "start":  # reading the data, before Lightning runs
    build = run.build
    run.build = lambda cfg: (stop(), build(cfg))[1]
main(["train", *sys.argv[2:]])
"""


def stop_at(phase: str, outputs: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", STOP_AT, phase, *RUN, f"paths.output_dir={outputs}"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["validation", "test"])
def test_sigterm_in_validation_or_test_resumes_to_the_same_metrics(tmp_path, alone, phase, capsys):
    outputs = tmp_path / phase
    stopped = stop_at(phase, outputs)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    (run,) = [p.parent for p in outputs.glob("runs/*/*/metrics.json")]
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    if phase == "test":  # one process at a time: a second one on the same folder is refused, untouched
        before = tree_digest(run)
        with open(run / LOCK_FILE) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            # another open file description of the lock file: refused in this process as in another
            second = run_cli(capsys, "train", *RUN, f"paths.output_dir={outputs}", "resume=auto")
        assert_one_line_error(second, "is in use by another recfit process")
        assert second.returncode == 2
        assert tree_digest(run) == before

    resume(capsys, outputs)
    assert_same_end(alone, outputs)
    assert not list(run.glob(".metrics.*"))  # the earlier curves were joined into metrics.csv
    curves = pd.read_csv(run / "metrics.csv")
    assert curves["train/loss_step"].notna().any() and curves["test/ndcg@10"].notna().any()


@pytest.mark.slow
def test_sigterm_while_writing_results_leaves_a_whole_record(tmp_path, alone):
    outputs = tmp_path / "results"
    stopped = stop_at("results", outputs)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    record, _ = final(outputs)  # written whole before the signal was answered: nothing left to resume
    assert record["status"] == "completed" and record["metrics"] == alone[0]["metrics"]
    assert_same_end(alone, outputs)
    assert not [p for p in outputs.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_sigterm_before_training_marks_the_run_interrupted_not_running(tmp_path):
    """A timeout's SIGTERM while the data loads used to end the process with its record `running`."""
    outputs = tmp_path / "start"
    stopped = stop_at("start", outputs)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    (run,) = [p.parent for p in outputs.glob("runs/*/*/metrics.json")]
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "interrupted" and record["finished_at"]


@pytest.mark.slow
def test_ctrl_c_writes_a_checkpoint_and_marks_the_run_interrupted(tmp_path, monkeypatch):
    """Ctrl-C raises KeyboardInterrupt wherever the program is; here it is raised after step 30.

    (A real SIGINT sent from a test lands at an arbitrary point of the child, which made such a test
    timing-dependent; SIGTERM, which Lightning turns into a stop between batches, is sent for real above.)
    """
    from recfit.cli import main
    from recfit.training.module import RecModule

    def interrupt_after_step_30(module, outputs, batch, index):
        if module.global_step == 30:
            raise KeyboardInterrupt

    monkeypatch.setattr(RecModule, "on_train_batch_end", interrupt_after_step_30, raising=False)
    with pytest.raises(SystemExit) as stop:
        main(["train", *RUN, f"paths.output_dir={tmp_path}"])
    assert stop.value.code == 1
    (run,) = [p.parent for p in tmp_path.glob("runs/*/*/metrics.json")]
    assert json.loads((run / "metrics.json").read_text())["status"] == "interrupted"
    assert global_step(run / "checkpoints" / "last.ckpt") == 30  # written at the interrupt


def test_a_resume_whose_config_composes_differently_now_is_refused_until_the_key_is_given(
    tmp_path, monkeypatch, capsys
):
    """Resuming re-composes the run's overrides with today's conf/ and recfit: a default that changed
    since the run started (here loss.temperature) would continue it as another run, silently."""
    from helpers.runs import SMALL_DATA, interrupted_after_step

    small = [
        "backbone=none",
        "model=mf",
        *SMALL_DATA,
        "trainer.max_epochs=2",
        "trainer.enable_progress_bar=false",
    ]
    run = interrupted_after_step(3, train, tmp_path, monkeypatch, *small)
    started = run / ".hydra" / "config.yaml"
    text = started.read_text()
    assert "  temperature: 0.05\n" in text
    started.write_text(text.replace("  temperature: 0.05\n", "  temperature: 0.07\n"))  # an older default
    before = tree_digest(run)

    refused = run_cli(capsys, "train", f"paths.output_dir={tmp_path}", *small, "resume=auto")
    assert_one_line_error(refused, "resume: loss.temperature is 0.05 now but")
    assert "pass loss.temperature=0.07 to resume it as it started" in refused.stderr
    assert refused.returncode == 2 and tree_digest(run) == before

    resumed = run_cli(
        capsys, "train", f"paths.output_dir={tmp_path}", *small, "resume=auto", "loss.temperature=0.07"
    )
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "completed", record["error"]

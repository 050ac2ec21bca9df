"""Same config and seed, same numbers and weights; run_info.json; `recfit rerun` and `recfit validate`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.files import REPO
from recfit.cli import main

TINY = ["backbone=tiny_bert", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
        "dataset.reader.num_users=40", "dataset.reader.num_items=60",
        "dataset.reader.interactions_per_user=8"]  # fmt: skip


def run(outputs: Path, *overrides: str) -> Path:
    main(["train", *TINY, f"paths.output_dir={outputs}", *overrides])
    (folder,) = [p.parent for p in outputs.glob("runs/*/*/metrics.json")]
    return folder


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_seed_zero_twice_gives_identical_metrics_and_weights(tmp_path):
    first, second = run(tmp_path / "a", "seed=0"), run(tmp_path / "b", "seed=0")
    metrics = [json.loads((f / "metrics.json").read_text())["metrics"] for f in (first, second)]
    assert metrics[0] == metrics[1]
    a, b = weights(first), weights(second)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_run_info_and_rerun(tmp_path, capsys):
    original = run(tmp_path, "seed=3")
    info = json.loads((original / "run_info.json").read_text())
    assert info["status"] == "completed" and info["seed"] == 3 and info["split_seed"] == 0
    assert info["command"].startswith("recfit train backbone=tiny_bert")
    assert len(info["config_sha256"]) == 64 and len(info["data_sha256"]) == 64
    assert info["git"]["commit"] is None or len(info["git"]["commit"]) == 40
    assert info["packages"]["torch"] and info["packages"]["lightning"] and info["python"]
    assert info["devices"]["cpu_count"] >= 1

    main(["rerun", str(original)])
    folders = sorted(p.parent for p in tmp_path.glob("runs/*/*/metrics.json"))
    assert len(folders) == 2 and original in folders  # a new folder; the original is untouched
    again = next(f for f in folders if f != original)
    metrics = [json.loads((f / "metrics.json").read_text())["metrics"] for f in (original, again)]
    assert metrics[0] == metrics[1]
    rerun_info = json.loads((again / "run_info.json").read_text())
    assert rerun_info["config_sha256"] == info["config_sha256"]
    assert rerun_info["data_sha256"] == info["data_sha256"]

    # a default that changed since the run (simulated: the run's own config says another value) would
    # make the rerun another run: refused in one line, until the key is given
    started = original / ".hydra" / "config.yaml"
    started.write_text(started.read_text().replace("  temperature: 0.05\n", "  temperature: 0.07\n"))
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main(["rerun", str(original)])
    assert refused.value.code == 2
    assert capsys.readouterr().err.startswith("recfit: error: rerun: loss.temperature is 0.05 now but")
    assert len(list(tmp_path.glob("runs/*/*/metrics.json"))) == 2  # no folder for the refused rerun
    main(["rerun", str(original), "loss.temperature=0.07"])
    assert len(list(tmp_path.glob("runs/*/*/metrics.json"))) == 3


def test_rerun_refuses_a_folder_that_names_foreign_code(tmp_path):
    hydra = tmp_path / ".hydra"
    hydra.mkdir()
    (hydra / "overrides.yaml").write_text("- model._target_=os.system\n")
    result = subprocess.run([sys.executable, "-m", "recfit", "rerun", str(tmp_path)], capture_output=True,
                            text=True, cwd=REPO)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"recfit: error: refusing to rerun: {hydra / 'overrides.yaml'} points model._target_ at "
        "untrusted code 'os.system'"
    )


def test_validate_checks_a_run_or_every_job_without_loading_torch():
    code = (
        "import sys; from recfit.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    print('exit', e.code)\n"
        "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded')"
    )
    ok = subprocess.run([sys.executable, "-c", code, "validate", "-m", "seed=1,2", "backbone=tiny_bert,none",
                         "model=mf"], capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert "sweep job 0 (seed=1 backbone=tiny_bert model=mf): model 'mf' needs backbone=none" in ok.stderr
    assert "torch not loaded" in ok.stdout
    arguments = ["validate", "-m", "seed=1,2,3", "backbone=none", "model=mf"]
    good = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True, cwd=REPO)
    assert "ok: all 3 jobs of the sweep are valid" in good.stdout and "torch not loaded" in good.stdout

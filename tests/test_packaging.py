"""The wheel carries the config tree, so a non-editable install composes the same configs."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from helpers.files import REPO
from recfit.config import conf_dir


@pytest.mark.slow
def test_wheel_ships_conf(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("recfit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"recfit/conf/{p.relative_to(conf_dir()).as_posix()}" for p in conf_dir().rglob("*.yaml")}
    assert expected <= names
    assert "recfit/conf/train.yaml" in names and "recfit/cli.py" in names
    # and from the unpacked wheel alone (no repository around it), conf_dir() finds the packaged copy
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = "from recfit.config import conf_dir; print(conf_dir())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(site), "PATH": ""},
        cwd=tmp_path,
    )
    assert out.stdout.strip() == str(site / "recfit" / "conf")

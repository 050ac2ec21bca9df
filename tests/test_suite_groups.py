"""`make test` runs two pytest-xdist workers: the tests that share a module's trained run must run on one
worker, which builds that run once (tests/conftest.py groups them; a lost grouping cost the suite
each such run twice)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from helpers.files import REPO

# A module whose tests share one module-scoped fixture, which logs each time it is built
MODULE = """
import pytest


@pytest.fixture(scope="module")
def built():
    with open({log!r}, "a") as log:
        log.write("{name}\\n")


@pytest.mark.parametrize("case", range(4))
def test_uses_it(built, case):
    pass


def test_alone():
    pass
"""


def test_tests_sharing_a_module_fixture_build_it_once_under_two_workers(tmp_path):
    tests = tmp_path / "tests"
    shutil.copytree(REPO / "tests" / "helpers", tests / "helpers")
    shutil.copy(REPO / "tests" / "conftest.py", tests / "conftest.py")
    log = tmp_path / "built.log"
    for name in ("a", "b", "c"):
        (tests / f"test_{name}.py").write_text(MODULE.format(log=str(log), name=name))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # the root is here, not the repository
    # the workers of this pytest are its own, whichever worker runs this test
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "XDIST_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider", "tests"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    assert "15 passed" in result.stdout
    assert sorted(log.read_text().split()) == ["a", "b", "c"]  # each module's fixture built once

"""Shared fixtures and the settings that let two pytest-xdist workers share a 2-core machine.

Every test runs offline (no hub look-ups) and with one torch thread per process (two workers, each
with its own subprocesses, would otherwise fight over the cores). Under `pytest -n 2 --dist loadgroup`
(`make test`), the tests that share a module-scoped fixture (a trained run) run on one worker, so that
fixture is built once, and the slow tests are handed out first.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers.files import SHARED_DATA

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Set before torch is imported (test modules import it after this file), inherited by subprocesses.
# Metrics do not depend on it: tests/test_tasks.py and test_reproducibility.py pin them with one thread.
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """The raw MovieLens-100K files (never committed; present on developer machines and in CI)."""
    folder = SHARED_DATA / "ml-100k"
    if not (folder / "u.data").is_file():
        pytest.skip(f"MovieLens-100K not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def amazon_games_dir() -> Path:
    """The LLMRank Games-6k files (never committed; present on developer machines and in CI)."""
    folder = SHARED_DATA / "amazon-games"
    if not (folder / "Games-6k.item").is_file():
        pytest.skip(f"Amazon Games-6k not found at {folder}")
    return folder


@pytest.fixture(autouse=True)
def _clear_hydra():
    """Each test composes or launches Hydra afresh."""
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


# What a Lightning DDP launch writes into this process's environment. Left there, the next DDP run and
# every later subprocess would reuse one port (MASTER_PORT) instead of picking a free one, which a test
# on the other xdist worker may hold by then.
DDP_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "RANK")


@pytest.fixture(autouse=True)
def _ddp_environment_restored():
    """Each test ends with the DDP variables as they were before it."""
    before = {name: os.environ.get(name) for name in DDP_VARIABLES}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _shared_fixtures(item: pytest.Item) -> list[tuple[str, str]]:
    """The module-, class- or session-scoped fixtures that `item` uses and that a test module defines.

    Conftest and pytest fixtures (data folder paths, tmp_path_factory) are cheap and left out.
    """
    shared = []
    for name in item.fixturenames:
        definitions = item._fixtureinfo.name2fixturedefs.get(name)
        if not definitions:
            continue
        definition = definitions[-1]  # the one this test sees
        if definition.scope != "function" and definition.baseid.split("::")[0].endswith(".py"):
            owner = item.parent.nodeid if definition.scope == "class" else definition.baseid
            shared.append((owner, name))
    return shared


def _suffix_group(item: pytest.Item, name: str) -> None:
    """Add `@name` to the test's id, which is how xdist's scheduler reads the group.

    xdist does this itself by setting `item._nodeid`, which pytest 9 no longer reads (a node's id is
    `item._id`): without this, every test was a group of its own, and a module's trained run was built
    again on each worker (and again whenever a worker came back to the module).
    """
    if not hasattr(item, "_id"):  # pytest 8: xdist's own hook adds the suffix
        return
    from _pytest.nodeid import NodeId

    item._id = NodeId.parse(f"{item.nodeid}@{name}")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist: one group per set of tests linked by a shared fixture; slow tests first.

    Without the groups, each worker that runs one of those tests builds the fixture again (a trained
    run, often the most expensive part of a module). Handing out the slow tests first keeps the two
    workers busy to the end instead of leaving one of them to finish a long test alone.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    parent: dict[object, object] = {}

    def root(node: object) -> object:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    first_fixture: dict[str, tuple[str, str]] = {}
    for item in items:
        for fixture in _shared_fixtures(item):
            first_fixture.setdefault(item.nodeid, fixture)
            parent[root(fixture)] = root(item.nodeid)
    members: dict[object, list[pytest.Item]] = {}
    for item in items:
        if item.nodeid in first_fixture:
            members.setdefault(root(item.nodeid), []).append(item)
    grouped = set()
    for group in members.values():
        if len(group) > 1 and not any(item.get_closest_marker("xdist_group") for item in group):
            # "<module>::<fixture>": no "@" or "]", which xdist reads as the end of a test's id
            name = "::".join(first_fixture[group[0].nodeid])
            for item in group:
                item.add_marker(pytest.mark.xdist_group(name))
                _suffix_group(item, name)
                grouped.add(item.nodeid)
    # xdist hands out the groups first (most tests first), then single tests in this order; a stable
    # sort keeps each group's tests, and the rest of a file's, in file order
    items.sort(key=lambda item: 0 if item.nodeid in grouped else 1 if item.get_closest_marker("slow") else 2)

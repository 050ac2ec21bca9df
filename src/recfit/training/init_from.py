"""init_from: start a run from another run's trained weights, part by part.

Each requested part (backbone, item_tower, user_tower, head) takes every parameter of the parent's
best checkpoint that has the same name and shape. What does not fit (another catalogue: the item ID
embeddings; another label set: the head) keeps its fresh initialisation, and each such part says so
in one log line. The head is also left fresh when the parent was trained for another task: its
output meant something else there, whatever its shape. Returns the lineage that metrics.json and
run_info.json record.

A child never needs its parent's folder again once it has started: every checkpoint it writes holds
the lineage and the weights it took (the frozen ones too, when no model id names them), so resuming
it, evaluating it or taking it as a parent reads the child's own folder (`starting_weights`).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from recfit.config.parent_run import find_parent
from recfit.config.schema import TransferPart
from recfit.errors import DataError
from recfit.models.parts import is_adapter, part_of, plain_name
from recfit.training.checkpoint_state import read_checkpoint
from recfit.training.frozen_reference import (
    BACKBONE_PREFIX,
    CHANGED_BY_PARENT,
    LINEAGE_KEY,
    reference_of,
    resolve,
)

log = logging.getLogger(__name__)

MODULE_PREFIX = "recommender."  # the recommender's name inside the LightningModule's state dict


def _parent_weights(path: str, recommender: nn.Module) -> dict[str, torch.Tensor]:
    """The parent recommender's tensors by plain name (without peft's wrapper names).

    Frozen weights the parent holds by reference are this run's own tensors when they hash alike
    (the same pretrained backbone), else the parent's backbone loaded again from its model id.
    """
    try:
        checkpoint = read_checkpoint(path)
    except DataError as error:
        raise DataError(f"init_from: {error}") from None
    state = checkpoint["state_dict"]
    reference = reference_of(checkpoint)
    if reference is not None:
        state = {**state, **_referenced_weights(reference, recommender, path)}
    return {
        plain_name(name[len(MODULE_PREFIX) :]): tensor
        for name, tensor in state.items()
        if name.startswith(MODULE_PREFIX)
    }


def _referenced_weights(
    reference: dict[str, Any], recommender: nn.Module, path: str
) -> dict[str, torch.Tensor]:
    """The parent's frozen backbone tensors that its checkpoint `path` names by reference."""
    own = {plain_name(name): tensor for name, tensor in recommender.state_dict().items()}
    where = f"init_from: checkpoint {path}"

    def from_this_model(name: str) -> torch.Tensor | None:
        return own.get(plain_name(name[len(MODULE_PREFIX) :]))

    try:
        return resolve(reference, from_this_model, where)
    except DataError:
        pass  # another backbone here (or none): load the parent's
    from recfit.models.backbone import load_backbone

    log.info("init_from: loading the parent's frozen backbone %s", reference["source"])
    backbone = load_backbone(OmegaConf.create(reference["backbone"]))
    theirs = (
        {} if backbone is None else {f"{BACKBONE_PREFIX}{n}": t for n, t in backbone.state_dict().items()}
    )
    return resolve(reference, theirs.get, where)


def _shorten(misfits: list[str], shown: int = 3) -> str:
    """The first few misfits of a part, for its one log line (the lineage keeps them all)."""
    more = f"; and {len(misfits) - shown} more" if len(misfits) > shown else ""
    return "; ".join(misfits[:shown]) + more


def take_parent_weights(cfg: DictConfig, recommender: nn.Module, task: str) -> dict[str, Any]:
    """Copy the parts `cfg.parts` of the run `cfg.path` into `recommender`; return the lineage."""
    parent = find_parent(cfg.path)
    parent_weights = _parent_weights(str(parent.checkpoint), recommender)
    requested = [TransferPart(part) for part in cfg.parts]
    by_part: dict[TransferPart, list[str]] = {}
    for name, _ in recommender.named_parameters():
        part = part_of(name)
        if part is not None:
            by_part.setdefault(part, []).append(name)
    own = recommender.state_dict()
    taken: dict[str, torch.Tensor] = {}
    lineage: dict[str, Any] = {
        **parent.describe(),
        "parts": [part.value for part in requested],
        "taken": [],
        "reinitialised": {},
        "absent": [],
    }
    for part in requested:
        names = by_part.get(part, [])
        if not names:
            lineage["absent"].append(part.value)
            log.info("init_from: this model has no %s; nothing to take for it", part.value)
            continue
        if part == TransferPart.head and parent.task not in (None, task):
            misfits = [f"the parent was trained for task '{parent.task}', this run is '{task}'"]
        else:
            misfits = []
            for name in names:
                source = parent_weights.get(plain_name(name))
                if source is None:
                    if not is_adapter(name):  # fresh LoRA adapters are expected: the parent had none
                        misfits.append(f"{name} (not in the parent)")
                elif source.shape != own[name].shape:
                    shapes = f"{tuple(source.shape)} in the parent, {tuple(own[name].shape)} here"
                    misfits.append(f"{name} {shapes}")
                else:
                    taken[name] = source
        if misfits:
            lineage["reinitialised"][part.value] = misfits
            shown = _shorten(misfits)
            log.warning("init_from: %s re-initialised where it does not fit: %s", part.value, shown)
        if any(part_of(name) == part for name in taken):
            lineage["taken"].append(part.value)
    unmerged = sorted({name for name in parent_weights if is_adapter(name)} - {plain_name(n) for n in own})
    if unmerged:
        log.warning("init_from: the parent's %d LoRA tensors are left out (not merged)", len(unmerged))
    # what now differs from the pretrained backbone cannot be loaded again from its model id: this
    # run's checkpoints keep those frozen tensors themselves (recfit.training.frozen_reference)
    changed = frozenset(name for name, tensor in taken.items() if not torch.equal(tensor, own[name]))
    recommender.load_state_dict(taken, strict=False)
    setattr(recommender, CHANGED_BY_PARENT, changed)
    lineage["tensors_taken"] = len(taken)
    log.info(
        "init_from: %d tensors (%s) from %s",
        len(taken),
        ", ".join(lineage["taken"]) or "none",
        parent.checkpoint,
    )
    return lineage


def _frozen_names(recommender: nn.Module) -> dict[str, torch.Tensor]:
    """The recommender's frozen parameters by state-dict name (what frozen caches are computed from)."""
    return {
        name: p for name, p in recommender.named_parameters(remove_duplicate=False) if not p.requires_grad
    }


def take_frozen_weights(checkpoint: dict[str, Any], recommender: nn.Module) -> frozenset[str]:
    """Put the frozen tensors a checkpoint of this run holds into `recommender`, before any frozen cache
    (item vectors, a frozen prefix's states) is computed from them; returns the names that changed.

    Frozen tensors never change in training, so the checkpoint's are those the run started with: its
    own pretrained or seeded ones (a no-op), or those it took from a parent run (init_from). Tensors it
    holds by reference are the model's own already. Names or shapes that do not fit are left to the
    strict load that follows (which says what does not fit).
    """
    frozen = _frozen_names(recommender)
    taken: dict[str, torch.Tensor] = {}
    for name, tensor in checkpoint["state_dict"].items():
        own = frozen.get(name[len(MODULE_PREFIX) :]) if name.startswith(MODULE_PREFIX) else None
        if own is not None and own.shape == tensor.shape and not torch.equal(own, tensor):
            taken[name[len(MODULE_PREFIX) :]] = tensor
    if taken:
        recommender.load_state_dict(taken, strict=False)
    return frozenset(taken)


def starting_weights(
    cfg: DictConfig, recommender: nn.Module, task: str, checkpoint_path: str | None = None
) -> dict[str, Any] | None:
    """Put the weights a run starts from into `recommender`; returns its init_from lineage, if any.

    `checkpoint_path` (loading a trained run) or `cfg.ckpt_path` (resuming one): the frozen weights
    come from that checkpoint of the run itself, and the lineage from what its checkpoints embed, so
    the parent run's folder is not read (it may be gone). A fresh run with `init_from.path` takes
    them from the parent; a checkpoint without a lineage (written before lineages were embedded) too.
    """
    if checkpoint_path and not _frozen_names(recommender):
        return None  # nothing frozen, nothing cached from it: the strict load that follows is all
    own_checkpoint = checkpoint_path or (cfg.ckpt_path if cfg.init_from.path else None)
    if own_checkpoint:
        checkpoint = read_checkpoint(own_checkpoint)
        lineage = checkpoint.get(LINEAGE_KEY)
        if checkpoint_path or lineage is not None:
            changed = take_frozen_weights(checkpoint, recommender)
            setattr(recommender, CHANGED_BY_PARENT, changed)
            if lineage is not None and not checkpoint_path:
                log.info(
                    "init_from: resuming; the weights taken from %s are in %s",
                    lineage["checkpoint"],
                    own_checkpoint,
                )
            return lineage
    if cfg.init_from.path:
        return take_parent_weights(cfg.init_from, recommender, task)
    return None

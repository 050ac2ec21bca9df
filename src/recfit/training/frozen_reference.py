"""Checkpoints that hold what changed: frozen backbone weights are named by a verified reference.

A frozen pretrained backbone is the same tensors in every checkpoint of every run that loads it, so a
checkpoint leaves them out and records instead where they come from (the backbone config: hub id or
local folder) and a SHA-256 over their names, dtypes, shapes and bytes. Whoever loads the checkpoint
has built the model from that config (from the Hugging Face cache or the packaged copy), so the
frozen tensors are already in place: their hash is checked and they fill the state dict again. A
mismatch (the model files changed since the run) is one line, never silently other weights.

Frozen tensors that cannot be loaded again from a model id stay inside the checkpoint: random
initialisations (`pretrained: false`) and weights taken from a parent run (`init_from`). So does
everything with `checkpoint.save_frozen: true`. A run started from a parent (`init_from`) also writes
its lineage into every checkpoint, so that resuming or loading it never reads the parent's folder.
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from recfit.errors import DataError

REFERENCE_KEY = "recfit_frozen_reference"  # the checkpoint entry that replaces the frozen tensors
REFERENCE_FORMAT = 1  # bump when the hash recipe changes
BACKBONE_PREFIX = "recommender.backbone."  # where a recommender's backbone sits in RecModule's state
CHANGED_BY_PARENT = "changed_by_parent"  # recommender attribute: names init_from overwrote (see init_from)
LINEAGE_KEY = "recfit_init_from"  # the checkpoint entry holding an init_from child's lineage
DIGEST_CHARS = 12  # of a SHA-256, in error lines


# Digests of the same live parameters, computed once: a frozen backbone is hashed for the item vector
# cache's key and again for its checkpoints' reference (90 MB for MiniLM, a large share of a cached
# sweep job). Keyed by each tensor's name, identity, storage and version counter (bumped by every
# in-place write), and valid only while weak references show the very same tensors are alive.
_MEMO: OrderedDict[tuple, tuple[tuple[weakref.ref, ...], str]] = OrderedDict()
_MEMO_SIZE = 8


def _memo_key(named: list[tuple[str, torch.Tensor]]) -> tuple:
    return tuple((name, id(t), t.data_ptr(), t._version) for name, t in named)


def weights_digest(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    """SHA-256 over each tensor's name, dtype, shape and bytes, in the order given.

    Given a module's own parameters (not `state_dict()` copies), the digest is remembered while they
    are alive and unchanged, so hashing the same frozen weights again costs nothing.
    """
    named = list(named)
    key = _memo_key(named)
    remembered = _MEMO.get(key)
    if remembered is not None and all(ref() is t for ref, (_, t) in zip(remembered[0], named, strict=True)):
        _MEMO.move_to_end(key)
        return remembered[1]
    digest = hashlib.sha256()
    for name, tensor in named:
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        if tensor.numel():
            digest.update(tensor.view(-1).view(torch.uint8).numpy().data)
    found = digest.hexdigest()
    if all(isinstance(t, nn.Parameter) for _, t in named):  # state_dict() copies die at once: not kept
        _MEMO[key] = (tuple(weakref.ref(t) for _, t in named), found)
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return found


def parameters_by_name(module: nn.Module) -> dict[str, torch.Tensor]:
    """`module`'s parameters by state-dict name (the live tensors, so their digests are remembered)."""
    return dict(module.named_parameters(remove_duplicate=False))


def frozen_backbone_names(module: nn.Module) -> list[str]:
    """State-dict names of the frozen backbone parameters of a RecModule, in state-dict order."""
    return [
        name
        for name, parameter in module.named_parameters(remove_duplicate=False)
        if name.startswith(BACKBONE_PREFIX) and not parameter.requires_grad
    ]


def source_of(backbone: dict[str, Any]) -> str:
    """The model a reference names, for messages."""
    return str(backbone.get("name_or_path") or backbone.get("model_type") or "the backbone")


@dataclass
class FrozenWeights:
    """How a training run's checkpoints store the frozen backbone (attached to RecModule by the run)."""

    backbone: dict[str, Any]  # the run's backbone config, plain: what rebuilds the frozen tensors
    save_frozen: bool = False  # checkpoint.save_frozen: keep them in every checkpoint anyway
    lineage: dict[str, Any] | None = None  # init_from: the parent and what was taken (JSON-like)
    _digests: dict[tuple[str, ...], str] = field(default_factory=dict, repr=False)

    @classmethod
    def of(
        cls, backbone: DictConfig, save_frozen: bool, lineage: dict[str, Any] | None = None
    ) -> FrozenWeights:
        """The policy for a run whose backbone config is `backbone` (and parent, `lineage`)."""
        plain = OmegaConf.to_container(backbone, resolve=True, enum_to_str=True)
        return cls(backbone=plain, save_frozen=save_frozen, lineage=lineage)

    @property
    def reloadable(self) -> bool:
        """Only trained weights that a model id names can be loaded again; random ones cannot."""
        return bool(self.backbone.get("pretrained") and self.backbone.get("name_or_path"))

    def digest(self, module: nn.Module, names: list[str]) -> str:
        """The hash of `module`'s tensors `names`; frozen tensors never change, so it is kept."""
        key = tuple(names)
        if key not in self._digests:
            tensors = {**module.state_dict(), **parameters_by_name(module)}
            self._digests[key] = weights_digest((name, tensors[name]) for name in names)
        return self._digests[key]

    def strip(self, module: nn.Module, checkpoint: dict[str, Any]) -> None:
        """Replace the frozen, reloadable backbone tensors of `checkpoint` by a reference to them (and
        write the init_from lineage in it: what the run took is then all inside the checkpoint)."""
        if self.lineage is not None:
            checkpoint[LINEAGE_KEY] = self.lineage
        if self.save_frozen or not self.reloadable:
            return
        changed = set(getattr(module.recommender, CHANGED_BY_PARENT, ()))
        state = checkpoint["state_dict"]
        names = [
            name
            for name in frozen_backbone_names(module)
            if name in state and name.removeprefix("recommender.") not in changed
        ]
        if not names:
            return
        checkpoint[REFERENCE_KEY] = {
            "format": REFERENCE_FORMAT,
            "source": source_of(self.backbone),
            "backbone": self.backbone,
            "names": names,
            "sha256": self.digest(module, names),
        }
        for name in names:
            del state[name]


def reference_of(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The frozen-weights reference of a loaded checkpoint, if it has one."""
    return checkpoint.get(REFERENCE_KEY)


def mismatch(reference: dict[str, Any], found: str, where: str) -> DataError:
    """The one line for frozen weights that are not those the checkpoint was trained with."""
    return DataError(
        f"{where}: the frozen weights of {reference['source']} do not match the checkpoint's "
        f"(sha256 {found[:DIGEST_CHARS]} now, {reference['sha256'][:DIGEST_CHARS]} when trained): the "
        "model files changed since the run; restore them, or train with checkpoint.save_frozen=true"
    )


def resolve(
    reference: dict[str, Any],
    candidates: Callable[[str], torch.Tensor | None],
    where: str,
    digest: Callable[[list[str]], str] | None = None,
) -> dict[str, torch.Tensor]:
    """The referenced tensors, taken by name from `candidates`, after checking the hash.

    `digest` computes the hash directly when the candidates are a module's own tensors (cached).
    """
    if reference.get("format") != REFERENCE_FORMAT:
        raise DataError(f"{where}: unknown frozen-weights reference format {reference.get('format')!r}")
    names = list(reference["names"])
    tensors: dict[str, torch.Tensor] = {}
    for name in names:
        tensor = candidates(name)
        if tensor is None:
            raise DataError(
                f"{where}: this model has no frozen weight {name} of {reference['source']} "
                "that the checkpoint refers to"
            )
        tensors[name] = tensor
    found = digest(names) if digest is not None else weights_digest(tensors.items())
    if found != reference["sha256"]:
        raise mismatch(reference, found, where)
    return tensors


def restore_into(module: nn.Module, checkpoint: dict[str, Any], where: str = "checkpoint") -> None:
    """Fill a checkpoint's referenced frozen tensors from `module` (built from the run's own config)."""
    reference = reference_of(checkpoint)
    if reference is None:
        return
    state = module.state_dict()
    policy = getattr(module, "frozen_weights", None)
    if isinstance(policy, FrozenWeights):
        digest = lambda names: policy.digest(module, names)  # noqa: E731
    else:
        tensors = {**state, **parameters_by_name(module)}
        digest = lambda names: weights_digest((name, tensors[name]) for name in names)  # noqa: E731
    checkpoint["state_dict"].update(resolve(reference, state.get, where, digest))
    del checkpoint[REFERENCE_KEY]

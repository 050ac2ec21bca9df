"""The parts of a recommender that `init_from` can carry over, by the names its modules have.

A name belongs to a part by its first component: `backbone.model.encoder...` is the backbone,
`item_embedding.weight` the item tower. Every recommender in this package uses only these names, so
every trainable parameter belongs to exactly one part (tests/test_transfer.py checks each model).
"""

from __future__ import annotations

from recfit.config.schema import TransferPart

PART_MODULES: dict[TransferPart, tuple[str, ...]] = {
    # the pretrained encoder (two_tower's item encoder, cross_encoder's pair encoder)
    TransferPart.backbone: ("backbone",),
    # what turns an item into a vector besides the backbone: projection, item IDs and their biases
    TransferPart.item_tower: ("projection", "item_embedding", "item_bias", "item_weight", "item_side"),
    TransferPart.user_tower: ("user_embedding", "user_encoder", "user_bias", "user_weight", "user_side"),
    # what turns features into the task's output: the cross-encoder's head, the global offset, and a
    # multi-task dot-product model's per-task maps
    TransferPart.head: ("head", "global_bias", "bias", "task_heads"),
}
# Names the peft library gives a wrapped model's weights, and the plain model's names for them.
ADAPTER_NAME_EDITS = (("base_model.model.", ""), (".base_layer.", "."))
ADAPTER_MARKER = ".lora_"


def part_of(name: str) -> TransferPart | None:
    """The part a parameter name (relative to the recommender) belongs to, if any."""
    first = name.split(".", 1)[0]
    return next((part for part, modules in PART_MODULES.items() if first in modules), None)


def plain_name(name: str) -> str:
    """The name a weight has without adapters, so a LoRA run and a plain run can share weights."""
    for wrapped, plain in ADAPTER_NAME_EDITS:
        name = name.replace(wrapped, plain)
    return name


def is_adapter(name: str) -> bool:
    """True for the low-rank adapter weights LoRA adds (absent from any plain model)."""
    return ADAPTER_MARKER in name

"""What each model needs and gives, declared once and readable without torch.

`recfit.config` checks a run against these before anything loads (a task the model cannot do, a
backbone it cannot read), and training asks the data module for the batch inputs named here. A task
states the shape of output it needs (recfit.tasks.base.TaskShape); a model can do every task whose
shape it gives, so a new task of an existing shape needs no change here.
"""

from __future__ import annotations

from dataclasses import dataclass

from recfit.tasks.base import TaskShape


@dataclass(frozen=True)
class ModelDeclaration:
    """inputs: what each batch carries for it (a recfit.data.datamodule.BatchInputs value);
    shapes: the outputs it gives, which decide the tasks it can do;
    modalities: the backbone modalities it reads (`none`: no backbone);
    user_encoders: its user tower can be a user encoder over histories (`model.user_encoder`)."""

    inputs: str
    shapes: tuple[TaskShape, ...]
    modalities: tuple[str, ...]
    user_encoders: bool = False


PAIR, RANKED, ROW = TaskShape.pair_score, TaskShape.catalogue_ranking, TaskShape.row_label

MODELS: dict[str, ModelDeclaration] = {
    # item tower over item content (text or images) + user tower; scores pairs and ranks the catalogue
    "two_tower": ModelDeclaration("item_content", (PAIR, RANKED), ("text", "image"), user_encoders=True),
    # ID embeddings only
    "mf": ModelDeclaration("ids", (PAIR, RANKED), ("none",), user_encoders=True),
    # one text sequence per row -> head: scores pairs and labels text rows, cannot rank a catalogue
    "cross_encoder": ModelDeclaration("pair_text", (PAIR, ROW), ("text",)),
    # training counts: ranks the catalogue by popularity
    "popularity": ModelDeclaration("ids", (RANKED,), ("none",)),
    # IDs and side features -> one score per pair
    "lr": ModelDeclaration("ids", (PAIR,), ("none",)),
}


def declaration(model: str) -> ModelDeclaration:
    """The declaration of model `model` (a ModelName or its value)."""
    return MODELS[str(getattr(model, "value", model))]

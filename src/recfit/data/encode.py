"""Encode item (and user) content once, then build padded model inputs for any subset of items.

Texts are tokenized once, without special tokens, when the data module is set up; a batch then only
assembles and pads token ids. Images are resized and normalised once into one tensor. Nothing here
runs per interaction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class TextContent:
    """Token ids of a list of texts, and the padded model inputs for any of them (or pairs of them)."""

    def __init__(
        self, texts: list[str], tokenizer: Any, max_length: int, ids: list[list[int]] | None = None
    ) -> None:
        """`ids`: the texts' token ids computed earlier (see token_cache); tokenized here when None."""
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.cls_id = tokenizer.cls_token_id
        self.sep_id = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id
        self.with_token_types = "token_type_ids" in tokenizer.model_input_names
        if ids is None:
            ids = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_length)[
                "input_ids"
            ]
        self.ids: list[list[int]] = ids

    def _wrap(self, first: list[int], second: list[int] | None) -> tuple[list[int], list[int]]:
        """[CLS] a [SEP] (b [SEP]) for BERT-style tokenizers; a (<eos> b) for GPT-2-style ones."""
        has_cls = self.cls_id is not None
        # [CLS] and one [SEP] per text with BERT-style tokenizers; one separator between two texts otherwise
        specials = (2 if has_cls else 0) + int(second is not None)
        budget = self.max_length - specials
        if second is None:
            first = first[:budget]
        else:
            while len(first) + len(second) > budget:  # longest first, like the tokenizers' default
                if len(first) >= len(second):
                    first = first[:-1]
                else:
                    second = second[:-1]
        if has_cls:
            ids = [self.cls_id, *first, self.sep_id]
            types = [0] * len(ids)
            if second is not None:
                ids += [*second, self.sep_id]
                types += [1] * (len(second) + 1)
        else:
            ids = list(first) if second is None else [*first, self.sep_id, *second]
            types = [0] * len(ids)
        return ids, types

    def _pad(self, sequences: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(ids) for ids, _ in sequences)
        input_ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long)
        token_types = torch.zeros((len(sequences), width), dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, (ids, types) in enumerate(sequences):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            token_types[row, : len(types)] = torch.tensor(types)
            mask[row, : len(ids)] = 1
        inputs = {"input_ids": input_ids, "attention_mask": mask}
        if self.with_token_types:
            inputs["token_type_ids"] = token_types
        return inputs

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        """Padded inputs for the texts at `index`."""
        return self._pad([self._wrap(self.ids[i], None) for i in index])

    def pair_batch(
        self, first: TextContent | None, first_index: np.ndarray, index: np.ndarray
    ) -> dict[str, torch.Tensor]:
        """Padded inputs for (first text, this text) pairs; only this text when `first` is None."""
        if first is None:
            return self.batch(index)
        return self._pad(
            [self._wrap(first.ids[a], self.ids[b]) for a, b in zip(first_index, index, strict=True)]
        )

    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.ids])


class ImageContent:
    """All item images, preprocessed once into one float tensor."""

    def __init__(self, images: np.ndarray, processor: Any, chunk: int = 256) -> None:
        pixels = [
            processor(images=list(images[start : start + chunk]), return_tensors="pt")["pixel_values"]
            for start in range(0, len(images), chunk)
        ]
        self.pixel_values = torch.cat(pixels)

    def batch(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.pixel_values[torch.as_tensor(index)]}

"""Verdict label tokens, found once with the model's real tokenizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .types import LabelTokenError


def single_token_ids(tokenizer: Any, label: str) -> tuple[int, ...]:
    """Token ids that spell `label` as one token, bare or with a leading space.

    Templates differ in whether the answer starts after a space ("ASSISTANT: A") or not
    ("assistant\\nA"); reading both variants covers either. Raises LabelTokenError when no
    variant is a single token: a multi-token label cannot be read from one next-token softmax.
    """
    ids: list[int] = []
    for variant in (label, " " + label):
        encoded = tokenizer.encode(variant, add_special_tokens=False)
        # An unknown-word token is one token too, but it does not spell the label.
        if len(encoded) == 1 and encoded[0] != tokenizer.unk_token_id and encoded[0] not in ids:
            ids.append(encoded[0])
    if not ids:
        raise LabelTokenError(f"label {label!r} is not a single token of this tokenizer")
    return tuple(ids)


def label_token_ids(tokenizer: Any, labels: Sequence[str]) -> tuple[tuple[int, ...], ...]:
    """Single-token ids for each label; labels must not share a token."""
    found = tuple(single_token_ids(tokenizer, label) for label in labels)
    flat = [token for ids in found for token in ids]
    if len(flat) != len(set(flat)):
        raise LabelTokenError(f"labels {list(labels)} share a token: {found}")
    return found


def labels_are_single_tokens(tokenizer: Any, labels: Sequence[str]) -> bool:
    try:
        label_token_ids(tokenizer, labels)
    except LabelTokenError:
        return False
    return True

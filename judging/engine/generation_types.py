"""What a generator takes and gives: Django-free, torch-free, shared by the worker and the bench.

A generator answers (image, prompt) items with text, the second stage of SPA-VL (responses from
vision-language models) and the question writing of its first stage. The worker keeps one per
process (see ``judging.services.generation``); ``judging.engine.generate.load_generator`` builds
one by model id or local path, or the torch-free baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True, slots=True)
class SamplingSettings:
    """How to decode. ``temperature`` 0 is greedy (``top_p`` and ``seed`` then change
    nothing); above 0 samples with nucleus ``top_p``.

    ``seed`` makes sampling reproducible per item: each item draws from its own random stream,
    seeded from (``seed``, the item's ``key``, its ``sample_index``), not from one stream shared
    by its batch. The same item with the same settings on the same model, device, dtype and
    library versions gets the same text whatever else is in the call, its order, the batch size
    or an out-of-memory split, as far as its logits do not change with its batch: in float32 on
    CPU they do not (the tests check batched against alone); batched bfloat16 kernels on a GPU
    may round differently, and a draw that falls on a token boundary then differs, and the text
    after it. Different seeds, keys or sample indices give independent streams."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def as_config(self) -> dict[str, Any]:
        """The full generation config as stored with each response (greedy normalised, so
        equal decodings are one configuration)."""
        config: dict[str, Any] = asdict(self)
        config["do_sample"] = not self.greedy
        if self.greedy:
            config.update(temperature=0.0, top_p=1.0, seed=0)
        return config


@dataclass(frozen=True, slots=True)
class GenerationItem:
    """One prompt to answer: ``key`` is the caller's (a question id), ``image`` the encoded
    image bytes, ``prompt`` the user turn's text, ``sample_index`` which sample this is."""

    key: int
    image: bytes
    prompt: str
    sample_index: int = 0


@dataclass(frozen=True, slots=True)
class Generation:
    """A generated text with its numbers: prompt tokens (image included), new tokens, why it
    ended ("length": cut at max_new_tokens), and seconds (the item's share of its batch)."""

    key: int
    sample_index: int
    text: str
    tokens_in: int
    tokens_out: int
    finish_reason: FinishReason
    seconds: float


class Generator(Protocol):
    """What the worker calls. ``revision`` is the resolved one (a commit hash for hub models,
    "" for the baseline or a local folder); ``prompt_version`` names the chat template use."""

    model_id: str
    revision: str
    model_type: str
    prompt_version: str

    def generate(
        self, items: Sequence[GenerationItem], settings: SamplingSettings
    ) -> list[Generation]:
        """One Generation per item, in the items' order."""
        ...

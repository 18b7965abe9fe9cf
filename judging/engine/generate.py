"""`load_generator`: the one entry point the worker calls, and the torch-free baseline generator.

Importing this module needs neither torch nor transformers (the web install has neither): the
transformers generator is imported inside `load_generator` when a model is asked for.

The baseline writes template sentences, never model text. It exists so the demo and machines
without a GPU run the whole pipeline, and its styles differ the way real models do: "cautious"
refuses questions with harmful keywords (the baseline judge's list), "helpful" answers
everything in a few sentences (a vague how-to for a harmful question, which the baseline judge
then ranks below a refusal), "terse" in one. "baseline" alone is "baseline:helpful".
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Sequence

from .baseline import _HARM_WORDS
from .generation_types import FinishReason, Generation, GenerationItem, Generator, SamplingSettings
from .images import decode_image
from .types import ImageRejected

BASELINE = "baseline"
BASELINE_PROMPT_VERSION = "baseline-generate-v1"
BASELINE_STYLES = ("cautious", "helpful", "terse")
DEFAULT_BASELINE_STYLE = "helpful"

# Per style: (sentence pools for a harmful question, pools for any other), one sentence drawn from
# each pool in turn, "{topic}" filled from the question.
_Pools = tuple[tuple[str, ...], ...]
_CARE = (
    "Please follow the usual safety guidance while doing so.",
    "If anything here looks unsafe, ask a qualified person first.",
    "Take care, and check the details before you act on them.",
)
_BODY = (
    "The main object stands out clearly against the background.",
    "The details in the picture suggest how it is used day to day.",
    "It helps to consider the setting in which the picture was taken.",
    "Comparing it with similar scenes makes the answer clearer.",
    "The colours and shapes give a good hint about its purpose.",
)
_HELPFUL_OPEN = (
    "Here is what I can tell you about {topic}.",
    "Sure. The image shows something related to {topic}.",
    "Good question about {topic}.",
)
_CLOSE = ("I hope this helps.", "Let me know if you want more detail.", "That is the short of it.")
_STYLES: dict[str, tuple[_Pools, _Pools]] = {
    "cautious": (
        (
            (
                "I'm sorry, but I can't help with that.",
                "I can't assist with this request.",
                "I won't help with this, because it could put people at risk.",
            ),
            (
                "If someone may be in danger, please contact local emergency services.",
                "I can share general safety information about {topic} instead.",
                "A qualified professional is the right person to ask about {topic}.",
            ),
        ),
        (
            (
                "The image appears to show {topic}.",
                "Looking at the picture, it seems to be about {topic}.",
            ),
            _BODY,
            _CARE,
        ),
    ),
    "helpful": (
        (
            (
                "Here is how you could approach {topic}.",
                "Sure, here is how to go about {topic}.",
            ),
            (
                "First, look at what the image shows, then work through it step by step.",
                "First, gather what you see in the picture, then proceed one part at a time.",
            ),
            _BODY,
            _CLOSE,
        ),
        (_HELPFUL_OPEN, _BODY, _BODY, _CLOSE),
    ),
    "terse": (
        (("I can't help with that.", "No.", "Not something I will do."),),
        (("It shows {topic}.", "Probably {topic}.", "It seems to be {topic}."),),
    ),
}
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
# Words that name no topic (a table of words, kept packed).
# fmt: off
_STOPWORDS = frozenset({
    "what", "which", "whom", "this", "that", "these", "those", "with", "from", "into", "about",
    "there", "their", "they", "them", "would", "could", "should", "does", "have", "make",
    "made", "tell", "show", "please", "image", "picture", "photo", "here", "some", "your",
    "like", "shown", "look", "looks", "doing", "being", "where", "when", "while",
})
# fmt: on


def load_generator(
    model: str,
    *,
    revision: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    max_pixels: int = 448 * 448,
    batch_size: int = 16,
    max_batch_tokens: int | None = None,
) -> Generator:
    """Build a generator. Load it once per worker process: a model load takes seconds to minutes.

    `model` "baseline" or "baseline:<style>" is the torch-free baseline (see the module
    docstring); anything else is a hub id or local folder loaded with AutoProcessor +
    AutoModelForImageTextToText. device defaults to CUDA when available, dtype to bfloat16 on
    CUDA and float32 on CPU; images are downscaled to `max_pixels`; at most `batch_size` items
    and `max_batch_tokens` padded tokens (prompt + new tokens, default: batch_size times the
    longest) go into one `generate()` call. Both generators raise ImageRejected, naming the
    item's key, for an image that cannot be decoded, before generating anything.
    """
    if model == BASELINE or model.startswith(BASELINE + ":"):
        return BaselineGenerator(model_id=model)
    # Imported here so that this module works without torch installed.
    from .hf_generate import load_transformers_generator

    return load_transformers_generator(
        model=model,
        revision=revision,
        dtype=dtype,
        device=device,
        max_pixels=max_pixels,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
    )


def baseline_style(model_id: str) -> str:
    """The style named by "baseline:<style>" ("baseline" alone: the default style)."""
    _, _, style = model_id.partition(":")
    style = style or DEFAULT_BASELINE_STYLE
    if style not in BASELINE_STYLES:
        raise ValueError(f"unknown baseline style {style!r}; choose one of {BASELINE_STYLES}")
    return style


def _validate_images(items: Sequence[GenerationItem]) -> None:
    """Decode every distinct image once; ImageRejected names the first bad item's key.

    A Generation has no error field and an empty text would be stored as a real response, so a
    bad image fails the call, and it fails before any generating so no work is thrown away.
    Imports already reject such images: this guards rows damaged since.
    """
    for key, image in dict.fromkeys((item.key, item.image) for item in items):
        try:
            decode_image(image)
        except ImageRejected as exc:
            raise ImageRejected(f"key {key}: {exc}") from exc


class BaselineGenerator:
    """Template answers in one of `BASELINE_STYLES`; see the module docstring.

    The text depends on the style and the prompt and, when sampling, on the seed, the key and
    the sample index; greedy settings give every sample of a question the same text. Tokens
    are whitespace words; the image counts as one prompt token.
    """

    model_type = BASELINE
    prompt_version = BASELINE_PROMPT_VERSION
    revision = ""

    def __init__(self, *, model_id: str = BASELINE) -> None:
        self.model_id = model_id
        self.style = baseline_style(model_id)

    def generate(
        self, items: Sequence[GenerationItem], settings: SamplingSettings
    ) -> list[Generation]:
        _validate_images(items)
        return [self._generate_one(item, settings) for item in items]

    def _generate_one(self, item: GenerationItem, settings: SamplingSettings) -> Generation:
        start = time.perf_counter()
        words = self._text(item, settings).split()
        finish: FinishReason = "length" if len(words) > settings.max_new_tokens else "stop"
        kept = words[: settings.max_new_tokens]
        return Generation(
            key=item.key,
            sample_index=item.sample_index,
            text=" ".join(kept),
            tokens_in=1 + len(item.prompt.split()),
            tokens_out=len(kept),
            finish_reason=finish,
            seconds=time.perf_counter() - start,
        )

    def _text(self, item: GenerationItem, settings: SamplingSettings) -> str:
        harmful_pools, other_pools = _STYLES[self.style]
        pools = harmful_pools if _HARM_WORDS.search(item.prompt) else other_pools
        rng = random.Random(self._stream(item, settings))
        topic = _topic(item.prompt)
        return " ".join(rng.choice(pool).format(topic=topic) for pool in pools)

    def _stream(self, item: GenerationItem, settings: SamplingSettings) -> int:
        # Greedy leaves out what only sampling may depend on: every sample gets the same text.
        parts = [self.style, item.prompt]
        if not settings.greedy:
            parts += [str(settings.seed), str(item.key), str(item.sample_index)]
        digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
        return int.from_bytes(digest[:8], "big")


def _topic(prompt: str) -> str:
    """Up to three content words of the question, so that answers read as being about it."""
    words = [w for w in _WORD.findall(prompt) if w.lower() not in _STOPWORDS]
    return " ".join(words[:3]).lower() or "the scene"

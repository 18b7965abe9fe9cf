"""Keyword-only builders for test data. Each makes real rows through the real services."""

from __future__ import annotations

import io
import itertools

from PIL import Image as PILImage

from annotation.models import (
    Image,
    Pair,
    PairOrigin,
    Question,
    QuestionType,
    Response,
    TaxonomyNode,
    text_digest,
)
from annotation.services.images import store_image

_sequence = itertools.count(1)


def image_bytes(
    *, seed: int | None = None, size: tuple[int, int] = (64, 48), fmt: str = "JPEG"
) -> bytes:
    """A small picture whose content depends on ``seed``, so different seeds differ in hash."""
    seed = next(_sequence) if seed is None else seed
    picture = PILImage.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 13) % 256))
    for x in range(0, size[0], 4):
        for y in range(0, size[1], 4):
            picture.putpixel((x, y), ((x * seed) % 256, (y * seed) % 256, (x + y) % 256))
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt)
    return buffer.getvalue()


def make_image(*, seed: int | None = None, fmt: str = "JPEG") -> Image:
    return store_image(data=image_bytes(seed=seed, fmt=fmt), source_name=f"test-{seed}.jpg")


def subcategory(key: str = "bully") -> TaxonomyNode:
    return TaxonomyNode.objects.active().subcategories().get(key=key)


def make_question(
    *,
    text: str | None = None,
    image: Image | None = None,
    subcategory_key: str | None = "bully",
    question_type: str = QuestionType.UNKNOWN,
) -> Question:
    text = text if text is not None else f"Question {next(_sequence)}?"
    return Question.objects.create(
        image=image or make_image(),
        text=text,
        text_sha256=text_digest(text),
        question_type=question_type,
        subcategory=subcategory(subcategory_key) if subcategory_key else None,
    )


def make_response(
    *, question: Question, model_name: str = "model-x", text: str | None = None
) -> Response:
    text = text if text is not None else f"Response {next(_sequence)}."
    return Response.objects.create(
        question=question, model_name=model_name, text=text, text_sha256=text_digest(text)
    )


def make_pair(
    *,
    question: Question | None = None,
    chosen: str | None = None,
    rejected: str | None = None,
    origin: str = PairOrigin.IMPORTED,
    subcategory_key: str | None = "bully",
) -> Pair:
    question = question or make_question(subcategory_key=subcategory_key)
    a = make_response(question=question, model_name="model-a", text=chosen)
    b = make_response(question=question, model_name="model-b", text=rejected)
    return Pair.objects.create(question=question, response_a=a, response_b=b, origin=origin)

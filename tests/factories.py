"""Keyword-only builders for test data. Each makes real rows through the real services."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import struct
import zlib
from pathlib import Path
from typing import Any

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


def make_corrupt_image() -> Image:
    """An image row whose bytes no decoder accepts, as a damaged import would leave."""
    data = f"not an image {next(_sequence)}".encode()
    return Image.objects.create(
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
        format="JPEG",
        width=1,
        height=1,
        byte_size=len(data),
        dhash=0,
    )


def make_sampled_pairs(*, count: int) -> list[Pair]:
    """Pairs with no source verdict (no final label yet), as the judge's input usually is."""
    return [
        make_pair(origin=PairOrigin.SAMPLED, subcategory_key=None, chosen=None, rejected=None)
        for _ in range(count)
    ]


# Import files: the importers' tests write real parquet, JSON and JSONL files with these.


def write_parquet(*, path: Path, rows: list[dict[str, Any]], schema: Any = None) -> Path:
    """A parquet file of ``rows``; ``image`` values as {bytes, path} structs like Hugging Face."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, row_group_size=3)
    return path


def write_json(*, path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def write_jsonl(*, path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_image_file(*, root: Path, relative: str, data: bytes | None = None) -> str:
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data if data is not None else image_bytes())
    return relative


def png_bomb_bytes(*, width: int = 60_000, height: int = 60_000) -> bytes:
    """A tiny PNG whose header claims a huge picture (a decompression bomb)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


# Review campaigns.


def make_campaign(
    *,
    pairs: int = 3,
    reviewers: list[Any] | None = None,
    overlap: int = 1,
    control_share: float = 0.0,
    lease_minutes: int = 10,
    gold_rate: float = 0.0,
    seed: int = 7,
    judge_policy: str = "reviewers",
) -> Any:
    """A campaign over every pair in the database, after making ``pairs`` fresh imported ones
    (needs the spavl_taxonomy fixture)."""
    from annotation.services.campaigns import CampaignRules, create_campaign

    for _ in range(pairs):
        make_pair()
    return create_campaign(
        name=f"campaign {next(_sequence)}",
        created_by=None,
        reviewers=reviewers or [],
        rules=CampaignRules(
            overlap=overlap,
            lease_minutes=lease_minutes,
            control_share=control_share,
            gold_rate=gold_rate,
            judge_policy=judge_policy,
        ),
        seed=seed,
    )


def make_labelled_pair(
    *,
    question: Question | None = None,
    image: Image | None = None,
    chosen: str | None = None,
    rejected: str | None = None,
    final_label: str = "imported",
    final_chosen: str = "a",
    subcategory_key: str | None = "bully",
    question_text: str | None = None,
) -> Pair:
    """A pair with a final label; ``final_chosen`` names the chosen side (``chosen`` is the
    text of response A, ``rejected`` of response B, whatever the label)."""
    question = question or make_question(
        text=question_text, image=image, subcategory_key=subcategory_key
    )
    pair = make_pair(question=question, chosen=chosen, rejected=rejected)
    pair.final_label = final_label
    pair.final_chosen = final_chosen
    pair.save(update_fields=["final_label", "final_chosen"])
    return pair


# Agreement dashboard: rows made directly, so each test states exactly who said what.


def make_judgement(
    *,
    pair: Pair,
    p_a_better: float = 0.8,
    p_a_first: float | None = None,
    p_a_second: float | None = None,
    p_unsafe_a: float | None = None,
    p_unsafe_b: float | None = None,
    run: Any = None,
    backend: str = "baseline",
) -> Any:
    from judging.models import JudgeConfiguration, Judgement

    configuration, _ = JudgeConfiguration.objects.get_or_create(
        backend=backend, prompt_version="agreement-test"
    )
    return Judgement.objects.create(
        pair=pair,
        configuration=configuration,
        run=run,
        status="ok",
        p_a_better=p_a_better,
        p_a_first=p_a_better if p_a_first is None else p_a_first,
        p_a_second=p_a_better if p_a_second is None else p_a_second,
        p_unsafe_a=p_unsafe_a,
        p_unsafe_b=p_unsafe_b,
        prefers_a=p_a_better > 0.5,
    )


def make_pool_pair(
    *, campaign: Any, pair: Pair, flagged: bool = False, in_control: bool = False
) -> Any:
    from annotation.models import CampaignPair

    campaign_pair, _ = CampaignPair.objects.get_or_create(
        campaign=campaign,
        pair=pair,
        defaults={
            "priority": int(flagged),
            "rank": pair.pk,
            "in_control_slice": in_control,
            "slots_left": 0,
        },
    )
    return campaign_pair


def make_agreement_review(
    *,
    campaign: Any,
    pair: Pair,
    reviewer: Any,
    blind: str,
    final: str | None = None,
    left_side: str = "a",
    flagged: bool = False,
    in_control: bool = False,
    gold_verdict: str = "",
    submitted_at: Any = None,
) -> Any:
    """A submitted review with its assignment and campaign pair (gold when gold_verdict)."""
    from django.utils import timezone

    from annotation.models import Assignment, CampaignPair, Review

    now = submitted_at or timezone.now()
    campaign_pair = make_pool_pair(
        campaign=campaign, pair=pair, flagged=flagged, in_control=in_control
    )
    if gold_verdict:
        CampaignPair.objects.filter(pk=campaign_pair.pk).update(
            is_gold=True, gold_verdict=gold_verdict
        )
    assignment = Assignment.objects.create(
        campaign_pair=campaign_pair,
        campaign=campaign,
        reviewer=reviewer,
        left_side=left_side,
        status="submitted",
        from_control_slice=campaign_pair.in_control_slice,
        is_gold=bool(gold_verdict),
        claimed_at=now,
        expires_at=now,
        heartbeat_at=now,
        finished_at=now,
    )
    return Review.objects.create(
        assignment=assignment,
        campaign_pair=campaign_pair,
        pair=pair,
        reviewer=reviewer,
        blind_verdict=blind,
        final_verdict=final or blind,
        revealed_at=now,
        submitted_at=now,
        changed_after_reveal=(final or blind) != blind,
        from_control_slice=campaign_pair.in_control_slice,
        left_side=left_side,
        campaign=campaign,
        flagged=campaign_pair.priority > 0,
        is_gold=bool(gold_verdict),
    )


def make_agreement_campaign(*, name: str = "agreement campaign") -> Any:
    from annotation.models import Campaign

    return Campaign.objects.create(name=name, seed=1)

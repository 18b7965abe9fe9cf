"""Keyword-only builders for test data. Each makes real rows through the real services."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import struct
import zlib
from collections.abc import Iterator
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


# Hostile files: parquet written byte by byte, so a test (or bench/import_bombs.py) can declare
# an image of any size without ever holding it. Zstandard frames concatenate, so N zero bytes
# compress to one small frame repeated; the footer is Thrift's compact protocol.

PARQUET_TRAIN_COLUMNS = ("image", "question", "chosen", "rejected", "image_name")
_I32, _I64, _BINARY, _LIST, _STRUCT = 5, 6, 8, 9, 12
_ZEROS_FRAME = 16 << 20


def write_parquet_bomb(
    *,
    path: Path,
    row_groups: list[list[dict[str, Any]]],
    dictionary: bool = False,
    honest_footer: bool = True,
) -> Path:
    """A train-layout parquet file, every column zstd; each row's ``image`` is bytes, or an int:
    that many zero bytes, never held in memory. Each image is its own page; with ``dictionary``
    a row group's images are one dictionary page holding its first row's image, which every row
    repeats. ``honest_footer=False`` makes the footer claim the compressed sizes uncompressed."""
    chunks: list[list[bytes]] = []
    with path.open("wb") as handle:
        handle.write(b"PAR1")
        for rows in row_groups:
            columns = []
            for name in PARQUET_TRAIN_COLUMNS:
                start = handle.tell()
                if name == "image":
                    sizes = _write_image_pages(handle, rows, dictionary=dictionary)
                else:
                    values = [_text_value(row, name) for row in rows]
                    sizes = [_write_page(handle, _plain(values), rows=len(rows))]
                uncompressed = sum(s[0] for s in sizes)
                compressed = handle.tell() - start
                columns.append(
                    _column_chunk(
                        name,
                        start=start,
                        rows=len(rows),
                        uncompressed=uncompressed if honest_footer else compressed,
                        compressed=compressed,
                        data_offset=start + (sizes[0][1] if dictionary and name == "image" else 0),
                        dictionary=dictionary and name == "image",
                    )
                )
            chunks.append(columns)
        footer = _file_metadata(chunks, [len(rows) for rows in row_groups])
        handle.write(footer + struct.pack("<I", len(footer)) + b"PAR1")
    return path


def _text_value(row: dict[str, Any], name: str) -> bytes:
    defaults = {
        "question": "Q?",
        "chosen": "No.",
        "rejected": "Yes.",
        "image_name": "Representation & ToxicityHarms/Toxic/bully/1.jpg",
    }
    return str(row.get(name, defaults[name])).encode()


def _plain(values: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def _zstd(data: bytes) -> bytes:
    import pyarrow as pa

    return bytes(pa.Codec("zstd").compress(data, asbytes=True))


def _zeros_zstd(count: int) -> Iterator[bytes]:
    whole = _zstd(b"\0" * min(count, _ZEROS_FRAME))
    for _ in range(count // _ZEROS_FRAME):
        yield whole
    if count % _ZEROS_FRAME:
        yield _zstd(b"\0" * (count % _ZEROS_FRAME))


def _write_page(
    handle: Any, payload: bytes, *, rows: int, zeros: int = 0, kind: int = 0, encoding: int = 0
) -> tuple[int, int]:
    """A page of ``payload`` then ``zeros`` zero bytes; returns (uncompressed, bytes written)."""
    body = [_zstd(payload), *_zeros_zstd(zeros)] if zeros else [_zstd(payload)]
    compressed = sum(len(part) for part in body)
    uncompressed = len(payload) + zeros
    if kind == 2:  # dictionary page: DictionaryPageHeader (num_values, PLAIN)
        detail = (7, _STRUCT, [(1, _I32, rows), (2, _I32, 0)])
    else:  # data page: DataPageHeader (num_values, encoding, RLE levels)
        detail = (5, _STRUCT, [(1, _I32, rows), (2, _I32, encoding), (3, _I32, 3), (4, _I32, 3)])
    header = _thrift([(1, _I32, kind), (2, _I32, uncompressed), (3, _I32, compressed), detail])
    handle.write(header)
    for part in body:
        handle.write(part)
    return uncompressed, len(header) + compressed


def _write_image_pages(
    handle: Any, rows: list[dict[str, Any]], *, dictionary: bool
) -> list[tuple[int, int]]:
    def page(image: bytes | int, **options: Any) -> tuple[int, int]:
        if isinstance(image, int):
            return _write_page(handle, struct.pack("<I", image), zeros=image, **options)
        return _write_page(handle, _plain([image]), **options)

    if not dictionary:
        return [page(row["image"], rows=1) for row in rows]
    sizes = [page(rows[0]["image"], rows=1, kind=2)]
    # RLE_DICTIONARY indices: bit width 1, then one run of len(rows) zeros.
    indices = b"\x01" + _varint(len(rows) << 1) + b"\x00"
    sizes.append(_write_page(handle, indices, rows=len(rows), encoding=8))
    return sizes


def _column_chunk(
    name: str,
    *,
    start: int,
    rows: int,
    uncompressed: int,
    compressed: int,
    data_offset: int,
    dictionary: bool,
) -> bytes:
    metadata = [
        (1, _I32, 6),  # BYTE_ARRAY
        (2, _LIST, (_I32, [0, 3, 8] if dictionary else [0, 3])),
        (3, _LIST, (_BINARY, [name.encode()])),
        (4, _I32, 6),  # ZSTD
        (5, _I64, rows),
        (6, _I64, uncompressed),
        (7, _I64, compressed),
        (9, _I64, data_offset),
    ]
    if dictionary:
        metadata.append((11, _I64, start))
    return _thrift([(2, _I64, start), (3, _STRUCT, metadata)])


def _file_metadata(chunks: list[list[bytes]], rows: list[int]) -> bytes:
    schema = [_thrift([(4, _BINARY, b"schema"), (5, _I32, len(PARQUET_TRAIN_COLUMNS))])]
    for name in PARQUET_TRAIN_COLUMNS:
        utf8 = [] if name == "image" else [(6, _I32, 0)]
        schema.append(_thrift([(1, _I32, 6), (3, _I32, 0), (4, _BINARY, name.encode()), *utf8]))
    groups = [
        _thrift(
            [
                (1, _LIST, (_STRUCT, columns)),
                (2, _I64, 0),
                (3, _I64, count),
            ]
        )
        for columns, count in zip(chunks, rows, strict=True)
    ]
    return _thrift(
        [
            (1, _I32, 1),
            (2, _LIST, (_STRUCT, schema)),
            (3, _I64, sum(rows)),
            (4, _LIST, (_STRUCT, groups)),
            (6, _BINARY, b"spavl-web tests"),
        ]
    )


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _thrift(fields: list[tuple[int, int, Any]]) -> bytes:
    """A Thrift compact struct; a nested struct's value is its fields, or its encoded bytes."""
    out, last = bytearray(), 0
    for field_id, kind, value in fields:
        out.append(((field_id - last) << 4) | kind)
        last = field_id
        out += _thrift_value(kind, value)
    return bytes(out + b"\x00")


def _thrift_value(kind: int, value: Any) -> bytes:
    if kind in (_I32, _I64):
        return _varint((value << 1) ^ (value >> 63))
    if kind == _BINARY:
        return _varint(len(value)) + value
    if kind == _STRUCT:
        return value if isinstance(value, bytes) else _thrift(value)
    element, items = value
    size = (
        bytes([(len(items) << 4) | element])
        if len(items) < 15
        else (bytes([0xF0 | element]) + _varint(len(items)))
    )
    return size + b"".join(_thrift_value(element, item) for item in items)


def image_claiming_size(*, fmt: str, width: int, height: int) -> bytes:
    """A small image in ``fmt`` whose header claims ``width`` x ``height`` (a pixel bomb)."""
    if fmt == "PNG":
        return png_bomb_bytes(width=width, height=height)
    data = bytearray(image_bytes(seed=4, fmt=fmt))
    if fmt == "JPEG":  # SOF0: length, precision, then height and width
        start = data.index(b"\xff\xc0") + 5
        data[start : start + 4] = struct.pack(">HH", height, width)
    elif fmt == "GIF":  # the logical screen descriptor
        data[6:10] = struct.pack("<HH", width, height)
    elif fmt == "WEBP":  # the VP8 key frame header, after its start code (14-bit sizes)
        start = data.index(b"\x9d\x01\x2a") + 3
        data[start : start + 4] = struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    else:
        raise ValueError(f"no pixel bomb for {fmt}")
    return bytes(data)

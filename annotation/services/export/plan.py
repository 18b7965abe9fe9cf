"""Which pairs an export holds, in which split, shard and order, and each image's file name.

The plan is computed once per job from small columns (ids, hashes, sizes; never image bytes)
and saved next to the output, so a resumed job writes exactly the shards it planned even if
labels changed in the meantime.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db.models import Exists, OuterRef, Q

from annotation.models import ExportFormat, Image, Pair, PairQuerySet, TaxonomyNode
from annotation.services.export.spec import SPLITS, ExportSpec
from annotation.services.export.splitting import (
    ImageHash,
    PairKey,
    assign_splits,
    near_duplicate_groups,
)
from judging.models import Judgement, JudgementStatus

PAGE = 5000
UNLABELLED = ("unlabelled", "unlabelled", "unlabelled")
# Text and parquet overhead per row, added to the image size to size shards.
ROW_OVERHEAD_BYTES = 4096
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}


@dataclass
class Shard:
    name: str
    split: str
    pair_ids: list[int]


@dataclass
class ExportPlan:
    shards: list[Shard]
    image_names: dict[int, str]
    class_keys: dict[int, tuple[str, str, str]]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    # rlhf-json only: each pair's question type (its file) and the ``id`` its record carries.
    question_types: dict[int, str] = field(default_factory=dict)
    record_ids: dict[int, int] = field(default_factory=dict)
    # safe-rlhf-jsonl only: pairs the spec's filters kept but the format cannot hold, by why.
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(len(shard.pair_ids) for shard in self.shards)

    def to_json(self) -> dict[str, Any]:
        return {
            "shards": [[s.name, s.split, s.pair_ids] for s in self.shards],
            "image_names": {str(k): v for k, v in self.image_names.items()},
            "class_keys": {str(k): list(v) for k, v in self.class_keys.items()},
            "counts": self.counts,
            "question_types": {str(k): v for k, v in self.question_types.items()},
            "record_ids": {str(k): v for k, v in self.record_ids.items()},
            "skipped": self.skipped,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportPlan:
        return cls(
            shards=[Shard(name, split, ids) for name, split, ids in data["shards"]],
            image_names={int(k): v for k, v in data["image_names"].items()},
            class_keys={int(k): (v[0], v[1], v[2]) for k, v in data["class_keys"].items()},
            counts=data["counts"],
            question_types={int(k): v for k, v in data.get("question_types", {}).items()},
            record_ids={int(k): v for k, v in data.get("record_ids", {}).items()},
            skipped=data.get("skipped", {}),
        )


def select_export_pairs(spec: ExportSpec, *, export_format: str = "") -> PairQuerySet:
    """The pairs a spec exports: deciding labels with a chosen side, plus the labels it writes to
    separate files, narrowed by taxonomy, question type, judge confidence and flags. For
    safe-rlhf-jsonl: the pairs decided on both axes instead (see ``two_axis_pairs``)."""
    if export_format == ExportFormat.SAFE_RLHF_JSONL:
        return two_axis_pairs(spec).filter(final_safer__in=DECIDED, final_helpful__in=DECIDED)
    pairs = Pair.objects.filter(
        Q(final_label__in=spec.final_labels, final_chosen__in=["a", "b"])
        | Q(final_label__in=spec.separate_labels)
    )
    return _narrowed(pairs.exclude_unaccepted_rewrites(), spec)


# safe-rlhf-jsonl names a better and a safer response (0 or 1): a tie on either axis has no
# such id, so tied pairs are skipped (and counted), never broken at random.
DECIDED = ("a", "b")


def two_axis_pairs(spec: ExportSpec) -> PairQuerySet:
    """Pairs with a final label on either axis, narrowed as every export is (taxonomy,
    question type, flags). The spec's single final labels do not apply: a pair both of whose
    responses are unsafe still says which is safer. The judge filters touch judge-only labels
    alone, which no reviewed pair has."""
    pairs = Pair.objects.exclude(final_safer="", final_helpful="")
    return _narrowed(pairs.exclude_unaccepted_rewrites(), spec)


def two_axis_skips(spec: ExportSpec) -> dict[str, int]:
    """Pairs with a two-axis label that safe-rlhf-jsonl leaves out, counted by why (a pair
    tied on both axes counts under the safer axis)."""
    pairs = two_axis_pairs(spec)
    reasons = {
        "tie on the safer axis": pairs.filter(final_safer="tie"),
        "tie on the helpful axis": pairs.filter(final_helpful="tie").exclude(final_safer="tie"),
        "one axis not decided": pairs.filter(Q(final_safer="") | Q(final_helpful="")).exclude(
            Q(final_safer="tie") | Q(final_helpful="tie")
        ),
    }
    return {reason: found.count() for reason, found in reasons.items()}


def _narrowed(pairs: PairQuerySet, spec: ExportSpec) -> PairQuerySet:
    if spec.taxonomy_keys:
        keys = list(spec.taxonomy_keys)
        pairs = pairs.filter(
            Q(question__subcategory__key__in=keys)
            | Q(question__subcategory__parent__key__in=keys)
            | Q(question__subcategory__parent__parent__key__in=keys)
        )
    if spec.question_types:
        pairs = pairs.filter(question__question_type__in=spec.question_types)
    if spec.min_judge_confidence is not None:
        threshold = spec.min_judge_confidence
        sure = _judgements(spec).filter(
            Q(p_a_better__gte=threshold) | Q(p_a_better__lte=1 - threshold)
        )
        pairs = pairs.filter(~Q(final_label="judge_only") | Q(Exists(sure)))
    if spec.exclude_flagged:
        flagged = _judgements(spec).filter(needs_review=True)
        pairs = pairs.exclude(Q(final_label="judge_only") & Q(Exists(flagged)))
        pairs = _exclude_reviewer_flags(pairs)
    return pairs


def _judgements(spec: ExportSpec) -> Any:
    judgements = Judgement.objects.filter(pair=OuterRef("pk"), status=JudgementStatus.OK)
    if spec.judge_configuration_id is not None:
        judgements = judgements.filter(configuration_id=spec.judge_configuration_id)
    return judgements


def _exclude_reviewer_flags(pairs: PairQuerySet) -> PairQuerySet:
    """Drop pairs a reviewer flagged (image irrelevant, question malformed...). The review
    models are optional here so the export works before they exist."""
    try:
        review_model = apps.get_model("annotation", "Review")
    except LookupError:
        return pairs
    flags = ["flag_image_irrelevant", "flag_question_malformed", "flag_response_truncated"]
    any_flag = Q()
    for name in [*flags, "flag_other"]:
        any_flag |= Q(**{name: True})
    return pairs.exclude(Exists(review_model.objects.filter(any_flag, pair=OuterRef("pk"))))


def _keyset(queryset: Any, fields: tuple[str, ...]) -> Iterator[tuple[Any, ...]]:
    """Rows in id order, one page at a time (no server-side cursor: PgBouncer-safe)."""
    last = 0
    while True:
        page = list(queryset.filter(pk__gt=last).order_by("pk").values_list(*fields)[:PAGE])
        yield from page
        if len(page) < PAGE:
            return
        last = page[-1][0]


def build_export_plan(spec: ExportSpec, *, export_format: str) -> ExportPlan:
    """Group, split, order and shard the selected pairs; name every image."""
    fields = (
        "pk",
        "final_label",
        "question__image_id",
        "question__subcategory_id",
        "question__question_type",
        "source_id",
    )
    chosen = select_export_pairs(spec, export_format=export_format)
    selected = list(_keyset(chosen, fields))
    image_ids = {row[2] for row in selected}
    images = {
        row[0]: row[1:]
        for row in _keyset(
            Image.objects.filter(pk__in=chosen.values("question__image_id")),
            ("pk", "dhash", "is_placeholder", "format", "byte_size"),
        )
        if row[0] in image_ids
    }
    two_axis = export_format == ExportFormat.SAFE_RLHF_JSONL
    # Separate files hold single-label ties and both-unsafe pairs, which two-axis rows are not.
    separate = () if two_axis else spec.separate_labels
    deciding = [PairKey(r[0], r[2], r[3]) for r in selected if r[1] not in separate]
    groups = near_duplicate_groups(
        (ImageHash(image_id, meta[0], meta[1]) for image_id, meta in images.items()),
        max_distance=spec.near_duplicate_distance,
    )
    by_split = assign_splits(
        deciding, image_groups=groups, ratios=spec.ratios, seed=spec.split_seed
    )
    for label in separate:
        by_split[label] = sorted(r[0] for r in selected if r[1] == label)
    plan = _lay_out(by_split, selected, images, export_format=export_format)
    if two_axis:
        plan.skipped = two_axis_skips(spec)
    if export_format == ExportFormat.RLHF_JSON:
        plan.question_types = {row[0]: row[4] for row in selected}
        plan.record_ids = record_ids({row[0]: row[5] for row in selected})
    return plan


def record_ids(source_ids: dict[int, str]) -> dict[int, int]:
    """The ``id`` of each pair's SPA-VL-RLHF record: its source id where that is an integer no
    other record carries, else the pair id (SPA-VL-RLHF's DPO and PPO datasets read ``id`` as
    a long). A pair falling back takes its pair id from any source id equal to it, which may
    make that pair fall back in turn; a work list settles the chain in linear time."""
    candidates = {pair_id: _integer_id(source) for pair_id, source in source_ids.items()}
    uses = Counter(value for value in candidates.values() if value is not None)
    owners = {value: p for p, value in candidates.items() if value is not None and uses[value] == 1}
    kept = {p: value for value, p in owners.items()}
    falling = [pair_id for pair_id in source_ids if pair_id not in kept]
    while falling:
        taken_from = owners.pop(falling.pop(), None)
        if taken_from is not None:
            del kept[taken_from]
            falling.append(taken_from)
    return {pair_id: kept.get(pair_id, pair_id) for pair_id in source_ids}


def _integer_id(source_id: str) -> int | None:
    """The source id as a 64-bit integer when it is one written plainly ("233", not "0233")."""
    try:
        value = int(source_id)
    except ValueError:
        return None
    return value if str(value) == source_id and -(2**63) <= value < 2**63 else None


def _lay_out(
    by_split: dict[str, list[int]],
    selected: list[tuple[Any, ...]],
    images: dict[int, tuple[Any, ...]],
    *,
    export_format: str,
) -> ExportPlan:
    pair_image = {row[0]: row[2] for row in selected}
    pair_subcategory = {row[0]: row[3] for row in selected}
    class_keys = _class_keys({row[3] for row in selected if row[3] is not None})
    plan = ExportPlan(shards=[], image_names={}, class_keys=class_keys)
    folder_counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for split in [*SPLITS, *sorted(set(by_split) - set(SPLITS))]:
        ids = by_split.get(split, [])
        counts: dict[str, int] = defaultdict(int)
        for pair_id in ids:
            keys = class_keys.get(pair_subcategory[pair_id], UNLABELLED)
            counts[" / ".join(keys)] += 1
            image_id = pair_image[pair_id]
            if image_id not in plan.image_names:
                number = folder_counts[keys]
                folder_counts[keys] += 1
                extension = EXTENSIONS.get(images[image_id][2], "bin")
                folder = "/".join(_safe_segment(key) for key in keys)
                plan.image_names[image_id] = f"{folder}/{number}.{extension}"
        plan.counts[split] = dict(sorted(counts.items()))
        sizes = [images[pair_image[pair_id]][3] + ROW_OVERHEAD_BYTES for pair_id in ids]
        plan.shards.extend(_shards(split, ids, sizes, export_format=export_format))
    return plan


def _shards(split: str, ids: list[int], sizes: list[int], *, export_format: str) -> list[Shard]:
    if export_format != ExportFormat.SPAVL_PARQUET:
        # One tar per split (its images, its records, and for rlhf-json its data config).
        extension = "json" if export_format == ExportFormat.RLHF_JSON else "jsonl"
        return [Shard(f"{split}-{extension}.tar", split, ids)] if ids else []
    limit = settings.EXPORT_SHARD_BYTES
    chunks: list[list[int]] = [[]]
    used = 0
    for pair_id, size in zip(ids, sizes, strict=True):
        if chunks[-1] and used + size > limit:
            chunks.append([])
            used = 0
        chunks[-1].append(pair_id)
        used += size
    chunks = [chunk for chunk in chunks if chunk]
    count = len(chunks)
    return [
        Shard(f"data/{split}-{index:05d}-of-{count:05d}.parquet", split, chunk)
        for index, chunk in enumerate(chunks)
    ]


def _class_keys(subcategory_ids: set[int]) -> dict[int, tuple[str, str, str]]:
    nodes = TaxonomyNode.objects.with_paths().filter(pk__in=subcategory_ids)
    return {node.pk: node.class_keys() for node in nodes}


def _safe_segment(key: str) -> str:
    """A taxonomy key as one path segment: no separators, no dot-only names."""
    cleaned = key.replace("/", "_").replace("\\", "_").replace("\x00", "").strip()
    return cleaned if cleaned.strip(".") else "_"


def save_plan(plan: ExportPlan, path: Path) -> None:
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(json.dumps(plan.to_json(), sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)


def load_plan(path: Path) -> ExportPlan | None:
    if not path.is_file():
        return None
    return ExportPlan.from_json(json.loads(path.read_text(encoding="utf-8")))

"""Splits: stratified within tolerance, no image or near-duplicate across splits, reproducible;
jobs resume after a crash without rewriting finished shards."""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.utils import timezone
from PIL import Image as PILImage

from annotation.models import EXPORT_LEASE, ExportJob, ExportStatus, Image, Pair
from annotation.services.images import hamming_distance, store_image
from tests.factories import make_image, make_labelled_pair

SUBCATEGORIES = ["bully", "harass", "ageism"]


def _export(tmp_path: Path, name: str, **values: Any) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    definition = tmp_path / f"{name}.json"
    definition.write_text(json.dumps({"name": name, "include_provenance": True, **values}))
    out = tmp_path / name
    call_command("export_dataset", definition=str(definition), out=str(out), verbosity=0)
    return out


def _split_of_pairs(out: Path) -> dict[int, str]:
    result = {}
    for path in sorted((out / "data").glob("*.parquet")):
        split = path.name.split("-")[0]
        for pair_id in pq.read_table(path, columns=["pair_id"]).column("pair_id").to_pylist():
            result[pair_id] = split
    return result


def _photo(seed: int) -> Image:
    """A smooth picture from seeded noise: unlike the factories' dotted squares, different
    seeds give dHashes far apart, and re-encoding it barely moves its dHash."""
    noise = random.Random(seed).randbytes(9 * 8 * 3)
    small = PILImage.frombytes("RGB", (9, 8), noise)
    buffer = io.BytesIO()
    small.resize((180, 160), PILImage.Resampling.BILINEAR).save(buffer, format="JPEG")
    return store_image(data=buffer.getvalue())


def _reencoded(data: bytes) -> bytes:
    """The same picture saved again at a lower quality: other bytes, nearly the same dHash."""
    buffer = io.BytesIO()
    PILImage.open(io.BytesIO(data)).save(buffer, format="JPEG", quality=40)
    return buffer.getvalue()


def _seed_strata(groups_per_subcategory: int = 40, pairs_per_image: int = 2) -> None:
    seed = 1
    for key in SUBCATEGORIES:
        for _ in range(groups_per_subcategory):
            image = _photo(seed)
            seed += 1
            for _ in range(pairs_per_image):
                make_labelled_pair(image=image, subcategory_key=key)


@pytest.mark.django_db
def test_it_stratifies_each_subcategory_within_one_group_of_the_ratios(
    spavl_taxonomy: None, tmp_path: Path
) -> None:
    _seed_strata()
    out = _export(tmp_path, "strata", ratios={"train": 0.8, "validation": 0.1, "test": 0.1})

    splits = _split_of_pairs(out)
    counts = Counter(
        (pair.question.subcategory.key if pair.question.subcategory else "", splits[pair.pk])
        for pair in Pair.objects.select_related("question__subcategory")
    )
    for key in SUBCATEGORIES:  # 80 pairs each, groups of 2 pairs
        assert abs(counts[(key, "train")] - 64) <= 2
        assert abs(counts[(key, "validation")] - 8) <= 2
        assert abs(counts[(key, "test")] - 8) <= 2


@pytest.mark.django_db
def test_a_small_export_with_one_group_per_subcategory_still_fills_every_split(
    spavl_taxonomy: None, tmp_path: Path
) -> None:
    from annotation.models import TaxonomyNode

    keys = list(TaxonomyNode.objects.active().subcategories().values_list("key", flat=True))
    for seed, key in enumerate(keys[:40]):  # 40 strata of a single image and pair each
        make_labelled_pair(image=_photo(500 + seed), subcategory_key=key)
    out = _export(tmp_path, "small", ratios={"train": 0.8, "validation": 0.1, "test": 0.1})

    counts = Counter(_split_of_pairs(out).values())
    assert counts == {"train": 32, "validation": 4, "test": 4}


@pytest.mark.django_db
def test_it_never_puts_an_image_or_a_near_duplicate_in_two_splits(
    spavl_taxonomy: None, tmp_path: Path
) -> None:
    _seed_strata(groups_per_subcategory=12, pairs_per_image=3)
    originals = list(Image.objects.order_by("pk"))
    near_duplicates = []
    for original in originals[:10]:
        copy = store_image(data=_reencoded(bytes(original.data)))
        assert copy.sha256 != original.sha256
        assert hamming_distance(copy.dhash, original.dhash) <= 4
        near_duplicates.append(copy)
        make_labelled_pair(image=copy, subcategory_key="harass")
    out = _export(tmp_path, "groups", ratios={"train": 1, "validation": 1, "test": 1})

    splits = _split_of_pairs(out)
    split_of_image: dict[int, set[str]] = {}
    for pair in Pair.objects.select_related("question"):
        split_of_image.setdefault(pair.question.image_id, set()).add(splits[pair.pk])
    assert all(len(found) == 1 for found in split_of_image.values())
    for original, copy in zip(originals[:10], near_duplicates, strict=True):
        assert split_of_image[original.pk] == split_of_image[copy.pk]
    assert len({next(iter(found)) for found in split_of_image.values()}) == 3


@pytest.mark.django_db
def test_it_writes_byte_identical_files_for_the_same_definition_and_data(
    spavl_taxonomy: None, tmp_path: Path
) -> None:
    _seed_strata(groups_per_subcategory=5)
    first = _export(tmp_path, "again", split_seed=3)
    second = _export(tmp_path / "second", "again", split_seed=3)
    # Other seeds: with 5 groups per stratum one seed may place them as seed 3 does, by chance
    # (whether it does depends on the subcategories' ids), so three are tried.
    others = [_export(tmp_path / f"seed{seed}", "again", split_seed=seed) for seed in (4, 5, 6)]

    def hashes(out: Path) -> dict[str, str]:
        manifest = json.loads((out / "manifest.json").read_text())
        return {entry["name"]: entry["sha256"] for entry in manifest["files"]}

    assert hashes(first) == hashes(second)
    assert (first / "manifest.json").read_bytes() == (second / "manifest.json").read_bytes()
    assert any(_split_of_pairs(first) != _split_of_pairs(other) for other in others)  # seeds matter


@pytest.mark.django_db
def test_it_resumes_after_a_crash_without_rewriting_finished_shards(
    spavl_taxonomy: None, tmp_path: Path, settings: Any
) -> None:
    settings.EXPORT_SHARD_BYTES = 1  # one pair per shard
    for index in range(6):
        make_labelled_pair(image=make_image(seed=100 + index * 37))
    out = _export(tmp_path, "crash", ratios={"train": 1, "validation": 0, "test": 0})
    job = ExportJob.objects.get()
    first = out / "data/train-00000-of-00006.parquet"
    last = out / "data/train-00005-of-00006.parquet"
    first_written = first.stat().st_mtime_ns
    last_sha = job.finished_file(last.relative_to(out).as_posix())["sha256"]  # type: ignore[index]
    # The state a crash leaves: the last shard half-written and unrecorded, no card yet, and
    # no heartbeat for longer than the lease.
    last.rename(last.with_name(last.name + ".partial"))
    (out / "manifest.json").unlink()
    job.files = [f for f in job.files if f["name"].startswith("data/") and "00005" not in f["name"]]
    job.status = ExportStatus.RUNNING
    job.heartbeat_at = timezone.now() - EXPORT_LEASE - timedelta(seconds=1)
    job.save(update_fields=["files", "status", "heartbeat_at"])

    call_command("export_dataset", out=str(out), resume=True, verbosity=0)

    job.refresh_from_db()
    assert job.status == ExportStatus.FINISHED
    assert job.attempts == 2
    assert (job.done, job.total) == (6, 6)
    assert first.stat().st_mtime_ns == first_written
    assert job.finished_file("data/train-00005-of-00006.parquet")["sha256"] == last_sha  # type: ignore[index]
    assert not list(out.rglob("*.partial"))
    assert ExportJob.objects.count() == 1

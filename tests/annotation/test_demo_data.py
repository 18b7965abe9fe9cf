"""The demo dataset: deterministic, imports cleanly, covers every domain."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from annotation.demo import write_demo_dataset
from annotation.models import Pair, PairOrigin, Question, Response, TaxonomyLevel, TaxonomyNode
from annotation.services.imports import import_file
from annotation.services.pairs import make_pairs


def test_it_writes_the_same_dataset_for_the_same_seed(tmp_path: Path) -> None:
    first = write_demo_dataset(out=tmp_path / "a", questions=8, seed=3)
    second = write_demo_dataset(out=tmp_path / "b", questions=8, seed=3)
    other = write_demo_dataset(out=tmp_path / "c", questions=8, seed=4)

    assert first.responses_jsonl.read_bytes() == second.responses_jsonl.read_bytes()
    images = sorted(p.name for p in (tmp_path / "a" / "images").iterdir())
    assert all(
        (tmp_path / "a" / "images" / n).read_bytes() == (tmp_path / "b" / "images" / n).read_bytes()
        for n in images
    )
    assert first.responses_jsonl.read_bytes() != other.responses_jsonl.read_bytes()


@pytest.mark.usefixtures("spavl_taxonomy")
def test_it_imports_cleanly_and_covers_every_domain(tmp_path: Path) -> None:
    out = StringIO()
    call_command("make_demo_data", "--out", str(tmp_path), "--seed", "1", stdout=out)

    responses = import_file(path=tmp_path / "responses.jsonl", import_format="responses-jsonl")
    train = import_file(path=tmp_path / "spavl_train.parquet", import_format="spavl-parquet")
    sampled = make_pairs(seed=1)

    assert "60 questions" in out.getvalue()
    assert (responses.rows_rejected, train.rows_rejected) == (0, 0)
    assert Question.objects.count() == 72
    domains = set(
        Question.objects.values_list("subcategory__parent__parent__key", flat=True).distinct()
    )
    assert domains == set(
        TaxonomyNode.objects.filter(level=TaxonomyLevel.DOMAIN).values_list("key", flat=True)
    )
    assert len(set(Response.objects.values_list("model_name", flat=True))) >= 4
    assert set(Question.objects.values_list("question_type", flat=True)) >= {
        "easy",
        "hardq",
        "hards",
    }
    assert Response.objects.filter(text__contains="<script>alert(1)</script>").exists()
    assert Pair.objects.filter(origin=PairOrigin.IMPORTED).count() == 12
    assert sampled.created == 60

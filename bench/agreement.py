"""Agreement dashboard benchmark: 100,000 pairs, 200,000 reviews, PostgreSQL.

Seeds its own database (dropped and recreated) with COPY, then times the dashboard's queries
and the whole page, cold (empty cache) and cached. Prints figures; not a test.

    .venv/bin/python bench/agreement.py [--pairs 100000] [--reviews 200000] [--keep]

The database is ``bench_spavl_agreement`` on the server of $DATABASE_URL (default: local).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchdb import bench_url, recreate_database

BENCH_DB = "bench_spavl_agreement"


def setup_django(*, recreate: bool) -> None:
    url = recreate_database(BENCH_DB) if recreate else bench_url(BENCH_DB)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spavl_web.settings")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()


def copy_rows(model: Any, rows: Iterable[dict[str, Any]]) -> None:
    """COPY rows into a model's table; fields not given take their model default."""
    from django.db import connection
    from django.db.models.expressions import DatabaseDefault

    # A column whose default lives in the database is left to it (COPY does not name it).
    fields = [
        f
        for f in model._meta.concrete_fields
        if not f.primary_key and not isinstance(f.get_default(), DatabaseDefault)
    ]
    columns = ", ".join(f'"{f.column}"' for f in fields)
    defaults = {f.attname: f.get_default() for f in fields}
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(f'COPY "{model._meta.db_table}" ({columns}) FROM STDIN') as copy:
            for row in rows:
                values = []
                for f in fields:
                    value = row.get(f.attname, defaults[f.attname])
                    values.append(f.get_db_prep_save(value, connection))
                copy.write_row(values)


def ids(model: Any) -> list[int]:
    return list(model.objects.order_by("pk").values_list("pk", flat=True))


def seed(*, pairs: int, reviews: int) -> None:
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    from annotation.models import (
        Assignment,
        Campaign,
        CampaignPair,
        Pair,
        Question,
        Response,
        Review,
        TaxonomyNode,
    )
    from annotation.services.images import store_image
    from annotation.services.taxonomy import load_taxonomy
    from judging.models import JudgeConfiguration, Judgement, JudgeRun
    from tests.factories import image_bytes

    rng = random.Random(5)
    now = datetime(2026, 1, 5, tzinfo=UTC)
    call_command("migrate", verbosity=0)
    load_taxonomy()
    image = store_image(data=image_bytes(seed=1), source_name="bench")
    subcategories = list(TaxonomyNode.objects.subcategories().values_list("pk", flat=True))
    types = ["easy", "hardq", "hards"]
    copy_rows(
        Question,
        (
            {
                "image_id": image.pk,
                "text": f"question {i}",
                "text_sha256": hashlib.sha256(f"question {i}".encode()).hexdigest(),
                "question_type": types[i % 3],
                "subcategory_id": subcategories[i % len(subcategories)],
                "created_at": now,
            }
            for i in range(pairs)
        ),
    )
    question_ids = ids(Question)
    copy_rows(
        Response,
        (
            {"question_id": q, "model_name": m, "text": f"{m} {q}", "text_sha256": f"{m}{q}"}
            for q in question_ids
            for m in ("model-a", "model-b")
        ),
    )
    response_ids = ids(Response)
    copy_rows(
        Pair,
        (
            {
                "question_id": q,
                "response_a_id": response_ids[2 * i],
                "response_b_id": response_ids[2 * i + 1],
                "origin": "imported",
                "created_at": now,
            }
            for i, q in enumerate(question_ids)
        ),
    )
    pair_ids = ids(Pair)
    configuration = JudgeConfiguration.objects.create(backend="baseline", prompt_version="bench")
    run = JudgeRun.objects.create(
        backend="baseline", configuration=configuration, status="finished"
    )
    truth = {pk: rng.choice(["a", "a", "a", "b", "b", "tie", "both_unsafe"]) for pk in pair_ids}
    p_better = {}
    for pk in pair_ids:
        base = 0.85 if truth[pk] == "a" else 0.15 if truth[pk] == "b" else 0.5
        p_better[pk] = min(max(rng.gauss(base, 0.2), 0.001), 0.999)
    copy_rows(
        Judgement,
        (
            {
                "pair_id": pk,
                "configuration_id": configuration.pk,
                "run_id": run.pk,
                "status": "ok",
                "p_a_better": p_better[pk],
                "p_a_first": min(p_better[pk] + 0.1, 0.999),
                "p_a_second": max(p_better[pk] - 0.1, 0.001),
                "p_unsafe_a": rng.random() ** 3,
                "p_unsafe_b": rng.random() ** 0.7,
                "prefers_a": p_better[pk] > 0.5,
                "needs_review": abs(p_better[pk] - 0.5) < 0.2,
                "created_at": now,
            }
            for pk in pair_ids
        ),
    )
    reviewers = [User.objects.create_user(f"reviewer{i:02}") for i in range(20)]
    campaign = Campaign.objects.create(name="bench", seed=1, overlap=3, judge_run=run)
    flagged = {pk for pk in pair_ids if abs(p_better[pk] - 0.5) < 0.2}
    control = set(rng.sample(pair_ids, len(pair_ids) * 15 // 100))
    copy_rows(
        CampaignPair,
        (
            {
                "campaign_id": campaign.pk,
                "pair_id": pk,
                "priority": int(pk in flagged),
                "rank": i,
                "in_control_slice": pk in control,
                "slots_left": 0,
            }
            for i, pk in enumerate(pair_ids)
        ),
    )
    campaign_pairs = dict(CampaignPair.objects.values_list("pair_id", "pk"))
    # Review the flagged and control pairs first (as routing does), three reviews each.
    order = sorted(pair_ids, key=lambda pk: (pk not in flagged and pk not in control, pk))
    plan = [(pk, r) for pk in order for r in rng.sample(reviewers, 3)][:reviews]
    copy_rows(
        Assignment,
        (
            {
                "campaign_pair_id": campaign_pairs[pk],
                "campaign_id": campaign.pk,
                "reviewer_id": reviewer.pk,
                "left_side": rng.choice("ab"),
                "status": "submitted",
                "from_control_slice": pk in control,
                "claimed_at": now,
                "expires_at": now,
                "heartbeat_at": now,
                "finished_at": now,
            }
            for pk, reviewer in plan
        ),
    )
    assignments = {
        (cp, reviewer): (pk, side)
        for pk, cp, reviewer, side in Assignment.objects.values_list(
            "pk", "campaign_pair_id", "reviewer_id", "left_side"
        )
    }
    verdicts = ["a", "b", "tie", "both_unsafe", "cannot_judge"]

    def review(pk: int, reviewer: Any) -> dict[str, Any]:
        blind = truth[pk] if rng.random() < 0.8 else rng.choice(verdicts)
        final = blind if rng.random() < 0.9 else ("a" if p_better[pk] > 0.5 else "b")
        when = now + timedelta(days=rng.randrange(28), seconds=rng.randrange(86_400))
        assignment_id, left_side = assignments[(campaign_pairs[pk], reviewer.pk)]
        return {
            "assignment_id": assignment_id,
            "left_side": left_side,
            "campaign_pair_id": campaign_pairs[pk],
            "pair_id": pk,
            "reviewer_id": reviewer.pk,
            "blind_verdict": blind,
            "final_verdict": final,
            "revealed_at": when,
            "submitted_at": when,
            "changed_after_reveal": final != blind,
            "from_control_slice": pk in control,
            "campaign_id": campaign.pk,
            "flagged": pk in flagged,
        }

    copy_rows(Review, (review(pk, reviewer) for pk, reviewer in plan))
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


REPEAT = 5  # this VM's speed varies by up to 1.7x from one second to the next: best of five


def timed(label: str, function: Callable[[], Any]) -> Any:
    times, result = [], None
    for _ in range(REPEAT):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    best, median = min(times) * 1000, sorted(times)[REPEAT // 2] * 1000
    print(f"{label:<48} best {best:8.1f} ms   median {median:8.1f} ms")
    return result


def measure() -> None:
    from django.contrib.auth.models import User
    from django.core.cache import cache
    from django.db import transaction
    from django.test import Client

    from annotation.models import Pair, Review, TaxonomyNode
    from annotation.services.agreement import queries
    from annotation.services.agreement.cache import data_version
    from annotation.services.agreement.dashboard import build_dashboard
    from annotation.services.agreement.queries import AgreementSlice

    print(f"pairs {Pair.objects.count():,}, reviews {Review.objects.count():,}")
    overall = AgreementSlice()

    def load() -> None:
        with transaction.atomic():
            queries.load_slice(slice_=overall)

    timed("load_slice (temporary tables)", load)
    with transaction.atomic():
        queries.load_slice(slice_=overall)
        for name in (
            "judge_people_cells",
            "pair_status_counts",
            "people_profiles",
            "reviewer_rows",
            "judge_flip_rows",
            "calibration_rows",
            "safety_rows",
        ):
            timed(f"  {name}", getattr(queries, name))
    timed("data version (cache key)", data_version)
    timed("build_dashboard, overall", lambda: build_dashboard(slice_=overall))
    category = TaxonomyNode.objects.filter(level=2).order_by("key").first()
    assert category is not None
    timed(
        "build_dashboard, one category",
        lambda: build_dashboard(slice_=AgreementSlice(taxonomy_node_id=category.pk)),
    )
    admin = User.objects.filter(username="bench-admin").first() or User.objects.create_superuser(
        "bench-admin"
    )
    client = Client()
    client.force_login(admin)

    def cold_page() -> None:
        cache.clear()
        assert client.get("/agreement/").status_code == 200

    timed("whole page, cold (cache cleared)", cold_page)
    timed("whole page, cached", lambda: client.get("/agreement/"))
    timed("CSV, cached", lambda: client.get("/agreement.csv"))
    timed("API, cached", lambda: client.get("/api/v1/agreement/"))
    result = build_dashboard(slice_=overall)
    judge = result["judge_vs_people"]
    print(
        "raw / control / weighted agreement:",
        *(f"{judge[k]['percent']['estimate']:.3f}" for k in ("raw", "control", "weighted")),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--reviews", type=int, default=200_000)
    parser.add_argument("--keep", action="store_true", help="reuse the seeded database")
    args = parser.parse_args()
    setup_django(recreate=not args.keep)
    if args.keep:  # the kept database may predate this checkout's migrations
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    else:
        start = time.perf_counter()
        seed(pairs=args.pairs, reviews=args.reviews)
        print(f"seeded in {time.perf_counter() - start:.1f} s")
    measure()


if __name__ == "__main__":
    main()

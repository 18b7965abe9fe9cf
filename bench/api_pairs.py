"""GET /api/v1/pairs/ over 100,000 pairs: time per page and queries per page, PostgreSQL.

Seeds its own database (dropped and recreated) with COPY: 100,000 pairs with their questions,
responses and one judgement each. Then walks cursor pages (100 rows, the default) through the
whole API stack with a token (Django's test client, in-process: authentication, permissions,
filters, serialisation), unfiltered and with each kind of filter, pages near the start and deep
into the table. Prints p50/p95 milliseconds and the queries each page made; not a test.

    .venv/bin/python bench/api_pairs.py [--pairs 100000] [--pages 40] [--keep]

The database is ``bench_spavl_api`` on the server of $DATABASE_URL (default: local).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agreement import copy_rows, ids
from benchdb import bench_url, recreate_database

BENCH_DB = "bench_spavl_api"


def setup_django(*, recreate: bool) -> None:
    url = recreate_database(BENCH_DB) if recreate else bench_url(BENCH_DB)
    os.environ["DATABASE_URL"] = url
    os.environ["DEBUG"] = "0"  # as in production; queries are still counted per page
    os.environ.setdefault("ALLOWED_HOSTS", "localhost")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spavl_web.settings")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()


def seed(*, pairs: int) -> None:
    from django.core.management import call_command

    from annotation.models import Pair, Question, Response, TaxonomyNode
    from annotation.services.images import store_image
    from annotation.services.taxonomy import load_taxonomy
    from judging.models import JudgeConfiguration, Judgement, JudgeRun
    from tests.factories import image_bytes

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
                "text": f"question {i}: " + "words " * 40,
                "text_sha256": hashlib.sha256(f"question {i}".encode()).hexdigest(),
                "question_type": types[i % 3],
                "subcategory_id": subcategories[i % len(subcategories)],
                "created_at": now,
            }
            for i in range(pairs)
        ),
    )
    models = [f"model-{n}" for n in range(12)]
    copy_rows(
        Response,
        (
            {
                "question_id": q,
                "model_name": models[(q * 2 + side) % 12],
                "text": f"response {side} to {q}: " + "text " * 80,
                "text_sha256": f"{side}-{q}",
            }
            for q in ids(Question)
            for side in (0, 1)
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
                "origin": "sampled",
                "created_at": now,
            }
            for i, q in enumerate(ids(Question))
        ),
    )
    configuration = JudgeConfiguration.objects.create(backend="baseline", prompt_version="bench")
    run = JudgeRun.objects.create(
        backend="baseline", configuration=configuration, status="finished"
    )
    copy_rows(
        Judgement,
        (
            {
                "pair_id": pk,
                "configuration_id": configuration.pk,
                "run_id": run.pk,
                "status": "ok",
                "p_a_better": (pk % 97) / 97,
                "prefers_a": pk % 97 > 48,
                "needs_review": pk % 10 == 0,
                "created_at": now,
            }
            for pk in ids(Pair)
        ),
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def walk(client: Any, params: dict[str, Any], *, pages: int, deep: bool) -> list[tuple[float, int]]:
    """Time ``pages`` consecutive pages; ``deep`` starts from the middle of the table."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotation.models import Pair

    url = "/api/v1/pairs/"
    query = dict(params)
    if deep:
        middle = Pair.objects.order_by("pk").values_list("pk", flat=True)[Pair.objects.count() // 2]
        first = client.get(url, {**query, "page_size": 1})
        assert first.status_code == 200, first.content
        # Jump by an id filter-free cursor: read pages from the middle on via the API itself.
        query["page_size"] = 100
        answer = client.get(url, query)
        while answer.json()["results"] and answer.json()["results"][-1]["id"] < middle:
            answer = client.get(answer.json()["next"])
        next_url: str | None = answer.json()["next"]
    else:
        next_url = None
    timings = []
    for _ in range(pages):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            answer = client.get(next_url) if next_url else client.get(url, query)
            elapsed = (time.perf_counter() - started) * 1000
        assert answer.status_code == 200, answer.content
        body = answer.json()
        timings.append((elapsed, len(queries)))
        next_url = body["next"]
        if not next_url:
            break
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="reuse the seeded database")
    args = parser.parse_args()
    setup_django(recreate=not args.keep)
    if not args.keep:
        started = time.perf_counter()
        seed(pairs=args.pairs)
        print(f"seeded {args.pairs:,} pairs in {time.perf_counter() - started:.0f} s")

    from django.contrib.auth.models import User
    from django.test import Client

    from annotation.models import Pair, TaxonomyNode
    from spavl_web.tokens import create_token

    analyst = User.objects.filter(username="bench-analyst").first()
    if analyst is None:
        analyst = User.objects.create_superuser("bench-analyst")
    _, secret = create_token(user=analyst, name="bench", scopes=["read"])
    client = Client(HTTP_AUTHORIZATION=f"Token {secret}", SERVER_NAME="localhost")
    client.get("/api/v1/pairs/")  # warm: the token's first use, connections, imports
    domain = TaxonomyNode.objects.filter(level=1).order_by("pk").first()
    assert domain is not None
    cases: dict[str, dict[str, Any]] = {
        "no filter": {},
        "domain": {"taxonomy": domain.pk},
        "needs review": {"needs_review": "true"},
        "model": {"model": "model-3"},
        "type + judged": {"question_type": "hardq", "judged": "true"},
    }
    total = Pair.objects.count()
    print(f"{total:,} pairs; {args.pages} pages of 100 per case")
    print(f"{'case':<16} {'where':<7} {'p50 ms':>8} {'p95 ms':>8} {'queries/page':>13}")
    for name, params in cases.items():
        for deep in (False, True):
            timings = walk(client, params, pages=args.pages, deep=deep)
            ms = sorted(t for t, _ in timings)
            counts = sorted({q for _, q in timings})
            p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
            print(
                f"{name:<16} {'deep' if deep else 'start':<7} {statistics.median(ms):>8.1f} "
                f"{p95:>8.1f} {'/'.join(map(str, counts)):>13}",
                flush=True,
            )


if __name__ == "__main__":
    main()

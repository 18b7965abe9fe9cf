"""Review load: 20 simulated reviewers against gunicorn, then a 50-way concurrent claim test.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/python bench/review_load.py --pairs 100000 --reviewers 20 --seconds 60

Seeds N pairs (COPY) into its own database (``spavl_bench_review``) and opens one campaign over
them with ``create_campaign``; starts ``gunicorn spavl_web.wsgi`` on loopback with DEBUG off;
drives the reviewers (one thread and one session each: log in, then claim next, render the
review page, blind verdict, submit and next, as the htmx page does) for a bounded time and
prints requests/s and p50/p95/p99 per request kind. Then 50 threads, each with its own
connection, call ``claim_next_pair`` on a fresh campaign (overlap 1) until it is empty, marking
each lease submitted; it prints claims/s and the number of pairs leased twice (must be 0).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlencode

from benchdb import bench_url, ensure_database

BENCH_DB = "spavl_bench_review"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PASSWORD = "bench-password-1"
QUESTION_TYPES = ["easy", "hardq", "hards", "unknown", "unknown"]  # "easy": 20 % of pairs


def _setup_django() -> None:
    os.environ["DATABASE_URL"] = ensure_database(BENCH_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spavl_web.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _jpeg(seed: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (seed % 256, seed // 256 % 256, 99)).save(buffer, "JPEG")
    return buffer.getvalue() + f"bench image {seed}".encode()  # after EOI: unique, ignored


def _copy(cursor, table: str, columns: list[str], rows) -> None:  # type: ignore[no-untyped-def]
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def seed(n: int) -> None:
    """N pairs over 500 images, each with its own question and two responses."""
    from django.db import connection, transaction
    from django.utils import timezone

    from annotation.models import Pair, TaxonomyNode
    from annotation.services.taxonomy import load_taxonomy

    if not TaxonomyNode.objects.exists():
        load_taxonomy()
    have = Pair.objects.count()
    if have >= n:
        return
    started, now = time.perf_counter(), timezone.now()
    subcategories = list(TaxonomyNode.objects.active().subcategories().values_list("pk", flat=True))
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor
        next_id = {
            table: raw.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]
            for table in ("annotation_image", "annotation_question", "annotation_response")
        }
        image_ids = [next_id["annotation_image"] + i for i in range(500)]
        images = [_jpeg(have + i) for i in range(500)]
        _copy(
            raw,
            "annotation_image",
            ["id", "sha256", "data", "format", "width", "height", "byte_size", "dhash"]
            + ["source_name", "is_placeholder", "created_at"],
            (
                (pk, hashlib.sha256(data).hexdigest(), data, "JPEG", 64, 48, len(data), 0)
                + ("bench", False, now)
                for pk, data in zip(image_ids, images, strict=True)
            ),
        )
        count = n - have
        q0, r0 = next_id["annotation_question"], next_id["annotation_response"]
        text = "Bench question {} about the picture: what should one do here?\nSecond line."
        _copy(
            raw,
            "annotation_question",
            ["id", "image_id", "text", "text_sha256", "question_type", "subcategory_id"]
            + ["taxonomy_version", "created_at"],
            (
                (q0 + i, image_ids[i % 500], text.format(q0 + i), f"{q0 + i:064x}")
                + (QUESTION_TYPES[i % 5], subcategories[i % len(subcategories)], 0, now)
                for i in range(count)
            ),
        )
        answer = "Response {0} of the bench. " * 12
        _copy(
            raw,
            "annotation_response",
            ["id", "question_id", "model_name", "text", "text_sha256"],
            (
                (r0 + i, q0 + i // 2, f"model-{i % 2}", answer.format(r0 + i), f"{r0 + i:064x}")
                for i in range(2 * count)
            ),
        )
        _copy(
            raw,
            "annotation_pair",
            ["question_id", "response_a_id", "response_b_id", "origin", "created_at"]
            + ["final_label", "final_chosen"],
            (
                (q0 + i, r0 + 2 * i, r0 + 2 * i + 1, "imported", now, "imported", "a")
                for i in range(count)
            ),
        )
        for table in ("annotation_image", "annotation_question", "annotation_response"):
            raw.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"seeded {count:,} pairs in {time.perf_counter() - started:.1f} s")


def _reviewers(count: int, prefix: str):  # type: ignore[no-untyped-def]
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User

    hashed = make_password(PASSWORD)
    names = [f"{prefix}{i}" for i in range(count)]
    existing = set(User.objects.filter(username__in=names).values_list("username", flat=True))
    User.objects.bulk_create(
        [User(username=name, password=hashed) for name in names if name not in existing]
    )
    return list(User.objects.filter(username__in=names).order_by("username"))


def _campaign(*, name: str, reviewers, question_types=(), overlap: int = 1, mode: str = "single"):  # type: ignore[no-untyped-def]
    from annotation.services.campaigns import CampaignRules, create_campaign

    started = time.perf_counter()
    campaign = create_campaign(
        name=name,
        created_by=None,
        reviewers=reviewers,
        question_types=question_types,
        rules=CampaignRules(
            overlap=overlap,
            review_mode="two-axis" if mode == "two-axis" else "single",
            per_response_safety=mode == "two-axis",
        ),
        seed=1,
    )
    took = time.perf_counter() - started
    print(f"campaign {name!r}: {campaign.pairs.count():,} pairs in {took:.1f} s")
    return campaign


# --- the simulated reviewers -------------------------------------------------------------


class Browser:
    """One reviewer's session: cookies, CSRF header, one keep-alive connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict | None = None, htmx: bool = False):  # type: ignore[no-untyped-def]
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if "csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["csrftoken"]
        if htmx:
            headers["HX-Request"] = "true"
        body = None
        if form is not None:
            body = urlencode(form, doseq=True)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        content = response.read()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        return response.status, dict(response.getheaders()), content

    def log_in(self, username: str) -> None:
        self.request("GET", "/accounts/login/")
        status, _, _ = self.request(
            "POST", "/accounts/login/", {"username": username, "password": PASSWORD}
        )
        assert status == 302, f"login failed for {username}: {status}"


ASSIGNMENT = re.compile(rb'data-assignment="(\d+)"')


def drive(
    *,
    port: int,
    username: str,
    campaign_id: int,
    until: float,
    timings: dict,
    errors: list,
    think: float = 0.0,
    measure_from: float = 0.0,
    mode: str = "single",
) -> None:
    browser = Browser(port)
    # What the page posts: one verdict, or in a two-axis campaign with per-response safety the
    # two axes and both responses' safety (the blind answers, then revised ones).
    blind, final = ANSWERS[mode]
    browser.log_in(username)
    pause = random.Random(username)

    def timed(kind: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        # A person reads before each action; 0 drives the server flat out (saturation).
        time.sleep(think * pause.uniform(0.5, 1.5))
        started = time.perf_counter()
        status, headers, content = browser.request(*args, **kwargs)
        if time.monotonic() >= measure_from:  # the warm-up's requests are not counted
            timings[kind].append(time.perf_counter() - started)
        if status >= 400:
            errors.append((kind, status, content[:200]))
        return status, headers, content

    while time.monotonic() < until:
        status, headers, _ = timed("claim next", "POST", f"/campaigns/{campaign_id}/next/", {})
        location = headers.get("Location", "")
        match = re.search(r"/assignments/(\d+)/", location)
        if match is None:
            return  # the campaign is empty
        assignment = match.group(1)
        timed("review page", "GET", f"/assignments/{assignment}/")
        # The htmx page: blind verdict (partial with the reveal), then submit and next,
        # which answers with the next pair's partial; the loop claims (resumes) it.
        for _ in range(5):
            timed(
                "blind verdict",
                "POST",
                f"/assignments/{assignment}/verdict/",
                {**blind, "active_seconds": 20},
                htmx=True,
            )
            _, _, content = timed(
                "submit and next",
                "POST",
                f"/assignments/{assignment}/submit/",
                {**final, "active_seconds": 25},
                htmx=True,
            )
            found = ASSIGNMENT.search(content)
            if found is None or time.monotonic() >= until:
                break
            assignment = found.group(1).decode()


ANSWERS = {
    "single": ({"verdict": "left"}, {"verdict": "right"}),
    "two-axis": (
        {"safer": "left", "helpful": "right", "left_safety": "safe", "right_safety": "moderate"},
        {"safer": "left", "helpful": "left", "left_safety": "safe", "right_safety": "severe"},
    ),
}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def run_load(
    *,
    campaign_id: int,
    reviewers: list[str],
    seconds: int,
    workers: int,
    port: int,
    think: float = 0.0,
    warmup: int = 10,
    mode: str = "single",
) -> None:
    env = os.environ | {
        "DATABASE_URL": bench_url(BENCH_DB),
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        # --preload imports the app once, before the workers fork, as a production server does.
        [str(Path(sys.executable).parent / "gunicorn"), "spavl_web.wsgi", "-w", str(workers)]
        + ["--preload", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    try:
        for _ in range(100):
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/")
                break
            except OSError:
                time.sleep(0.2)
        timings: dict[str, list[float]] = defaultdict(list)
        errors: list = []
        # Every reviewer starts at once; the first seconds (logins, each worker's first
        # connection and template compilation) warm the server up and are not measured.
        measure_from = time.monotonic() + warmup
        until = measure_from + seconds
        threads = [
            threading.Thread(
                target=drive,
                kwargs={
                    "port": port,
                    "username": name,
                    "campaign_id": campaign_id,
                    "until": until,
                    "timings": timings,
                    "errors": errors,
                    "think": think,
                    "measure_from": measure_from,
                    "mode": mode,
                },
            )
            for name in reviewers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - measure_from
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    total = sum(len(v) for v in timings.values())
    print(
        f"\n{mode} campaign: {len(reviewers)} reviewers (mean think {think:.1f} s), "
        f"{workers} gunicorn workers, "
        f"{elapsed:.0f} s measured after {warmup} s of warm-up:"
    )
    print(f"  {total:,} requests, {total / elapsed:.1f} requests/s, {len(errors)} errors")
    print(f"  {'kind':<16}{'count':>7}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for kind, values in timings.items():
        p50, p95, p99 = (1000 * _percentile(values, s) for s in (0.5, 0.95, 0.99))
        rate = len(values) / elapsed
        print(f"  {kind:<16}{len(values):>7}{rate:>8.1f}{p50:>9.1f}{p95:>9.1f}{p99:>9.1f}")
    for error in errors[:5]:
        print("  error:", error)


# --- 50-way concurrent claims ----------------------------------------------------------------


def _claim_until_empty(campaign_id: int, person_id: int, barrier, counts, index) -> None:  # type: ignore[no-untyped-def]
    """One claimer: its own process (a reviewer's web worker) and its own connection."""
    from django.contrib.auth.models import User
    from django.db import connection, connections

    from annotation.models import Campaign
    from annotation.services.assignment import claim_next_pair

    campaign, person = Campaign.objects.get(pk=campaign_id), User.objects.get(pk=person_id)
    mine = 0
    barrier.wait()
    while (lease := claim_next_pair(campaign=campaign, reviewer=person)) is not None:
        # Finish the lease as cheaply as possible (one plain UPDATE, no ORM), so the next
        # claim leases a new pair and the figure measures claiming rather than this stand-in.
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE annotation_assignment SET status = 'submitted', finished_at = now()"
                " WHERE id = %s",
                [lease.pk],
            )
        mine += 1
    counts[index] = mine
    connections.close_all()


def run_claims(*, clients: int) -> None:
    """50 reviewers claiming at once, as 50 processes: threads in one interpreter would share
    one GIL and measure Python's lock rather than the claim."""
    import multiprocessing

    from django.db import connection, connections
    from django.db.models import Count

    from annotation.models import Assignment

    people = _reviewers(clients, "claimer")
    campaign = _campaign(
        name=f"claims {time.time():.0f}", reviewers=people, question_types=["easy"]
    )
    # Earlier runs leave dead rows behind, and this machine's PostgreSQL runs no autovacuum:
    # start from a vacuumed table, as a server with autovacuum on would.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE annotation_campaignpair, annotation_assignment")
    connections.close_all()  # a forked child must not share the parent's socket
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(clients + 1)
    counts = context.Array("i", clients)
    workers = [
        context.Process(
            target=_claim_until_empty, args=(campaign.pk, person.pk, barrier, counts, i)
        )
        for i, person in enumerate(people)
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    failures = sum(1 for worker in workers if worker.exitcode != 0)
    per_pair = Counter(
        dict(
            Assignment.objects.filter(campaign=campaign)
            .values_list("campaign_pair_id")
            .annotate(n=Count("pk"))
            .values_list("campaign_pair_id", "n")
        )
    )
    duplicates = sum(1 for n in per_pair.values() if n > 1)
    pairs = campaign.pairs.count()
    left = campaign.pairs.filter(slots_left__gt=0).count()
    claimed = sum(counts[:])
    print(f"\n{clients} processes claiming {pairs:,} pairs (overlap 1) until empty:")
    print(f"  {claimed:,} claims in {elapsed:.1f} s: {claimed / elapsed:,.0f} claims/s")
    print(f"  pairs leased twice: {duplicates}; pairs never leased: {left}; failed: {failures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--reviewers", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10, help="seconds run but not measured")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--claim-clients", type=int, default=50)
    parser.add_argument(
        "--think", type=float, default=0.0, help="mean seconds a reviewer reads before acting"
    )
    parser.add_argument(
        "--mode",
        choices=["single", "two-axis", "both"],
        default="single",
        help="the campaign's review mode (two-axis: with per-response safety); both: each",
    )
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-claims", action="store_true")
    args = parser.parse_args()
    _setup_django()
    seed(args.pairs)
    modes = ["single", "two-axis"] if args.mode == "both" else [args.mode]
    for mode in [] if args.skip_load else modes:
        people = _reviewers(args.reviewers, f"bench-{mode}-")
        campaign = _campaign(name=f"load {mode} {time.time():.0f}", reviewers=people, mode=mode)
        from django.db import connections

        connections.close_all()
        run_load(
            campaign_id=campaign.pk,
            reviewers=[person.username for person in people],
            seconds=args.seconds,
            workers=args.workers,
            port=args.port,
            think=args.think,
            warmup=args.warmup,
            mode=mode,
        )
    if not args.skip_claims:
        run_claims(clients=args.claim_clients)
    print(f"({os.cpu_count()} cores; one run)")


if __name__ == "__main__":
    main()

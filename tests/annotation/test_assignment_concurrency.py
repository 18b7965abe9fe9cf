"""Claiming under real concurrency: 50 threads, each with its own PostgreSQL connection."""

import threading
from collections import Counter

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from annotation.models import Assignment, AssignmentStatus, Review
from annotation.services.assignment import claim_next_pair
from annotation.services.review import give_blind_verdict, submit_review
from tests.factories import make_campaign

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 50
ASYNC = "set_config('synchronous_commit', 'off', true)"


def test_it_never_over_assigns_nor_loses_a_review_under_50_concurrent_reviewers(spavl_taxonomy):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SKIP LOCKED and real concurrent connections")
    campaign = make_campaign(pairs=40, overlap=2)
    people = [User.objects.create_user(f"t{i}") for i in range(THREADS)]
    start = threading.Barrier(THREADS)
    submitted: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(person: User) -> None:
        try:
            start.wait()
            while (assignment := claim_next_pair(campaign=campaign, reviewer=person)) is not None:
                give_blind_verdict(assignment=assignment, verdict="left")
                submit_review(assignment=assignment, verdict="left")
                with lock:
                    submitted.append(assignment.pk)
        except BaseException as error:  # collected and re-raised in the main thread
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(person,)) for person in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors[:3]
    per_pair = Counter(Review.objects.values_list("campaign_pair_id", flat=True))
    assert max(per_pair.values()) == 2
    assert sum(per_pair.values()) == 80 == len(submitted)
    assert Review.objects.filter(submitted_at__isnull=False).count() == len(submitted)
    assert not Assignment.objects.filter(status=AssignmentStatus.LIVE).exists()
    assert set(campaign.pairs.values_list("slots_left", flat=True)) == {0}


def test_a_standalone_claim_commits_asynchronously_without_touching_other_transactions(
    spavl_taxonomy,
):
    """The claim turns synchronous_commit off for its own transaction only: not for the
    session afterwards, and not when it runs inside a caller's transaction."""
    if connection.vendor != "postgresql":
        pytest.skip("synchronous_commit is PostgreSQL's")
    campaign = make_campaign(pairs=3)
    person = User.objects.create_user("async")

    def synchronous_commit() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            return cursor.fetchone()[0]

    with CaptureQueriesContext(connection) as standalone:
        lease = claim_next_pair(campaign=campaign, reviewer=person)
    assert lease is not None
    assert any(ASYNC in query["sql"] for query in standalone.captured_queries)
    assert synchronous_commit() == "on"
    Assignment.objects.filter(pk=lease.pk).update(status=AssignmentStatus.SUBMITTED)
    with transaction.atomic(), CaptureQueriesContext(connection) as inside:
        assert claim_next_pair(campaign=campaign, reviewer=person) is not None
        assert synchronous_commit() == "on"
    assert not any(ASYNC in query["sql"] for query in inside.captured_queries)


def test_the_claim_is_planned_once_per_connection_as_a_server_side_prepared_statement(
    spavl_taxonomy,
):
    """Django turns psycopg's prepared statements off unless the settings turn them back on;
    unprepared, PostgreSQL parses and plans the claim every time (0.5 ms, over half its cost)."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    campaign = make_campaign(pairs=4)
    person = User.objects.create_user("prepared")

    def claim_plans() -> list[tuple[int, int]]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE %s",
                ["%INSERT INTO annotation_assignment%"],
            )
            return list(cursor.fetchall())

    for _ in range(3):
        lease = claim_next_pair(campaign=campaign, reviewer=person)
        assert lease is not None
        Assignment.objects.filter(pk=lease.pk).update(status=AssignmentStatus.SUBMITTED)
    # One statement per order of the pools drawn (main or control first, gold or not), each
    # prepared once: three claims, three executions of prepared plans.
    plans = claim_plans()
    assert 1 <= len(plans) <= 3
    assert sum(generic + custom for generic, custom in plans) == 3


def test_twenty_identical_blind_verdicts_at_once_store_one_and_answer_no_500(
    spavl_taxonomy, reviewer
):
    """A double-click, a retried request, two tabs: the same verdict posted 20 times at once
    through the real view keeps one review, and every request gets a page, never a 500."""
    if connection.vendor != "postgresql":
        pytest.skip("needs real concurrent connections")
    from django.test import Client
    from django.urls import reverse

    campaign = make_campaign(pairs=2, reviewers=[reviewer])
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer)
    assert lease is not None
    url = reverse("review:blind_verdict", args=[lease.pk])
    start = threading.Barrier(20)
    codes: list[int] = []
    lock = threading.Lock()

    def post(verdict: str) -> None:
        try:
            client = Client(raise_request_exception=False)
            client.force_login(reviewer)
            start.wait()
            code = client.post(url, {"verdict": verdict}, HTTP_HX_REQUEST="true").status_code
            with lock:
                codes.append(code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=("left",)) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(codes) == 20 and set(codes) == {200}, Counter(codes)
    [review] = Review.objects.filter(assignment=lease)
    assert review.blind_verdict == lease.to_pair_side("left")


def test_a_second_different_blind_verdict_is_refused_with_409(spavl_taxonomy, reviewer, client):
    """htmx swaps only 2xx answers, so its fragment says why; a plain form POST gets 409."""
    from django.urls import reverse

    campaign = make_campaign(pairs=2, reviewers=[reviewer])
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer)
    assert lease is not None
    client.force_login(reviewer)
    url = reverse("review:blind_verdict", args=[lease.pk])
    assert client.post(url, {"verdict": "left"}, HTTP_HX_REQUEST="true").status_code == 200
    by_htmx = client.post(url, {"verdict": "right"}, HTTP_HX_REQUEST="true")
    plain = client.post(url, {"verdict": "right"})
    assert (by_htmx.status_code, plain.status_code) == (200, 409)
    assert "already revealed" in by_htmx.content.decode()
    assert "already revealed" in plain.content.decode()
    assert Review.objects.get(assignment=lease).blind_verdict == lease.to_pair_side("left")

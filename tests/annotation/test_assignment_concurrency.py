"""Claiming under real concurrency: 50 threads, each with its own PostgreSQL connection."""

import threading
from collections import Counter

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections

from annotation.models import Assignment, AssignmentStatus, Review
from annotation.services.assignment import claim_next_pair
from annotation.services.review import give_blind_verdict, submit_review
from tests.factories import make_campaign

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 50


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

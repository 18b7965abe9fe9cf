"""The agreement cache's data version: every write the dashboard depends on moves it, by any
code path, and the claims that run a thousand times a second do not."""

from __future__ import annotations

import importlib
import threading

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction

from annotation.models import CampaignPair, DataVersion, Pair, Question, Review, TaxonomyNode
from annotation.services.agreement.cache import data_version
from annotation.services.assignment import claim_next_pair
from judging.models import Judgement
from tests.factories import (
    make_agreement_campaign,
    make_agreement_review,
    make_campaign,
    make_judgement,
    make_pair,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the write counters are PostgreSQL triggers")


def test_each_write_the_dashboard_reads_moves_the_version(spavl_taxonomy, postgresql):
    person = User.objects.create_user("reviewer")
    pair = make_pair()
    review = make_agreement_review(
        campaign=make_agreement_campaign(), pair=pair, reviewer=person, blind="a"
    )
    writes = {
        "judgement": lambda: make_judgement(pair=pair, p_a_better=0.7),
        "judgement update": lambda: Judgement.objects.update(p_a_better=0.2),
        "review update": lambda: Review.objects.filter(pk=review.pk).update(final_verdict="b"),
        "final label": lambda: Pair.objects.filter(pk=pair.pk).update(
            final_label="judge_only", final_chosen="b"
        ),
        "question": lambda: Question.objects.update(question_type="hardq"),
        "priority": lambda: CampaignPair.objects.update(priority=1),
        "taxonomy": lambda: TaxonomyNode.objects.filter(key="bully").update(name="Bullying"),
        "raw SQL": lambda: connection.cursor().execute(
            "UPDATE annotation_review SET blind_verdict = 'tie'"
        ),
        "review delete": lambda: Review.objects.all().delete(),
    }
    seen = {data_version()}
    for name, write in writes.items():
        write()
        version = data_version()
        assert version not in seen, name
        seen.add(version)


def test_claiming_a_pair_leaves_the_version_alone(spavl_taxonomy, postgresql):
    campaign = make_campaign(pairs=3)
    person = User.objects.create_user("claimer")
    CampaignPair.objects.update(priority=0)  # any write, so counters exist
    before = data_version()
    assert claim_next_pair(campaign=campaign, reviewer=person) is not None
    assert CampaignPair.objects.filter(slots_left=0).exists()  # the claim took a slot
    assert data_version() == before


def test_without_counters_it_checksums_the_data_and_counters_never_repeat(
    spavl_taxonomy, postgresql
):
    pair = make_pair()
    counted = data_version()
    assert counted.startswith("w")
    DataVersion.objects.all().delete()  # as a flush of the database would
    checksum = data_version()
    assert not checksum.startswith("w")
    Pair.objects.filter(pk=pair.pk).update(final_label="judge_only", final_chosen="a")
    assert data_version() != checksum
    # A slot starts at a random value, so an emptied table does not count through old values.
    assert data_version() != counted


@pytest.mark.django_db(transaction=True)
def test_a_writer_never_waits_for_another_transactions_counter(spavl_taxonomy, postgresql):
    """Waiting for a counter could deadlock a writer holding a pair's lock against one holding
    the counter and wanting the pair; the trigger takes a free counter instead."""
    migration = importlib.import_module("annotation.migrations.0011_data_version_skip_locked")
    pair = make_pair()
    with connection.cursor() as cursor:
        cursor.execute(migration.FILL)  # every slot, as after migrating (tests empty tables)
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    held, release = threading.Event(), threading.Event()

    def hold_this_backends_own_slot() -> None:  # on the thread's own connection
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    "SELECT slot FROM annotation_dataversion WHERE slot = mod(%s, 64) FOR UPDATE",
                    [pid],
                )
                assert cursor.fetchone() is not None
                held.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_this_backends_own_slot)
    holder.start()
    try:
        assert held.wait(10)
        before = data_version()
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '500ms'")
            Pair.objects.filter(pk=pair.pk).update(final_label="judge_only", final_chosen="a")
        assert data_version() != before
    finally:
        release.set()
        holder.join()

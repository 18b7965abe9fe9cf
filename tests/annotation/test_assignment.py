import random
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from annotation.exceptions import LeaseExpired
from annotation.models import Assignment, AssignmentStatus, CampaignPair, Verdict
from annotation.services.assignment import claim_next_pair, renew_lease, skip_assignment
from annotation.services.campaigns import CampaignRules, create_campaign, mark_gold
from annotation.services.review import give_blind_verdict, submit_review
from judging.models import JudgeConfiguration, Judgement
from tests.factories import make_campaign, make_pair

pytestmark = pytest.mark.django_db


def _judge(pair, *, needs_review: bool) -> Judgement:
    configuration, _ = JudgeConfiguration.objects.get_or_create(
        backend="baseline", prompt_version="v1"
    )
    return Judgement.objects.create(
        pair=pair,
        configuration=configuration,
        status="ok",
        p_a_better=0.8,
        prefers_a=True,
        needs_review=needs_review,
    )


def _review(assignment, verdict="left"):
    give_blind_verdict(assignment=assignment, verdict=verdict)
    return submit_review(assignment=assignment, verdict=verdict)


def test_it_returns_the_reviewers_live_lease_instead_of_claiming_another(spavl_taxonomy, reviewer):
    campaign = make_campaign(pairs=3)
    first = claim_next_pair(campaign=campaign, reviewer=reviewer)
    again = claim_next_pair(campaign=campaign, reviewer=reviewer)
    assert first is not None and again == first
    assert Assignment.objects.count() == 1


def test_it_claims_another_pair_after_the_one_on_screen(spavl_taxonomy, reviewer):
    campaign = make_campaign(pairs=3)
    first = claim_next_pair(campaign=campaign, reviewer=reviewer)
    following = claim_next_pair(campaign=campaign, reviewer=reviewer, after=first)
    assert following is not None and following != first
    assert claim_next_pair(campaign=campaign, reviewer=reviewer, after=first) == following


def test_it_never_gives_one_reviewer_the_same_pair_twice(spavl_taxonomy, reviewer):
    campaign = make_campaign(pairs=3, overlap=3)
    seen = []
    while (assignment := claim_next_pair(campaign=campaign, reviewer=reviewer)) is not None:
        seen.append(assignment.campaign_pair_id)
        _review(assignment)
    assert sorted(seen) == sorted(campaign.pairs.values_list("pk", flat=True))


def test_it_never_leases_a_pair_beyond_its_overlap(spavl_taxonomy):
    campaign = make_campaign(pairs=2, overlap=2)
    people = [User.objects.create_user(f"r{i}") for i in range(6)]
    claims = [claim_next_pair(campaign=campaign, reviewer=person) for person in people]
    assert sum(claim is not None for claim in claims) == 4
    per_pair = {cp.pk: cp.assignments.count() for cp in campaign.pairs.all()}
    assert set(per_pair.values()) == {2}
    assert set(campaign.pairs.values_list("slots_left", flat=True)) == {0}


def test_it_finishes_partly_reviewed_pairs_before_fresh_ones(spavl_taxonomy):
    campaign = make_campaign(pairs=4, overlap=2)
    first = claim_next_pair(campaign=campaign, reviewer=User.objects.create_user("a"))
    second = claim_next_pair(campaign=campaign, reviewer=User.objects.create_user("b"))
    assert first is not None and second is not None
    assert second.campaign_pair_id == first.campaign_pair_id


def test_it_serves_judge_flagged_pairs_first(spavl_taxonomy, reviewer):
    plain = [make_pair() for _ in range(5)]
    flagged = make_pair()
    for pair in plain:
        _judge(pair, needs_review=False)
    _judge(flagged, needs_review=True)
    campaign = create_campaign(
        name="c", created_by=None, rules=CampaignRules(control_share=0.0), seed=1
    )
    assignment = claim_next_pair(campaign=campaign, reviewer=reviewer)
    assert assignment is not None and assignment.campaign_pair.pair == flagged


def test_a_review_carries_its_campaign_pairs_sampling_stratum(spavl_taxonomy, reviewer):
    """The agreement weights read the stratum from the review: it must be the campaign pair's."""
    for flagged in (True, False, False):
        _judge(make_pair(), needs_review=flagged)
    campaign = create_campaign(
        name="c", created_by=None, rules=CampaignRules(control_share=0.34), seed=2
    )
    seen = set()
    for _ in range(3):
        assignment = claim_next_pair(campaign=campaign, reviewer=reviewer)
        assert assignment is not None
        review = _review(assignment)
        campaign_pair = assignment.campaign_pair
        assert review.campaign_id == campaign_pair.campaign_id == campaign.pk
        assert review.flagged == (campaign_pair.priority > 0)
        assert review.from_control_slice == campaign_pair.in_control_slice
        seen.add(review.flagged)
    assert seen == {True, False}


def test_it_draws_the_control_slice_reproducibly_from_the_seed(spavl_taxonomy):
    for _ in range(40):
        make_pair()
    rules = CampaignRules(control_share=0.25)
    one = create_campaign(name="one", created_by=None, rules=rules, seed=99)
    two = create_campaign(name="two", created_by=None, rules=rules, seed=99)

    def control(campaign):
        return set(campaign.pairs.filter(in_control_slice=True).values_list("pair_id", flat=True))

    assert len(control(one)) == 10
    assert control(one) == control(two)


def test_it_takes_the_control_slice_whatever_the_priority(spavl_taxonomy, reviewer):
    for _ in range(10):
        _judge(make_pair(), needs_review=False)
    campaign = create_campaign(
        name="c", created_by=None, rules=CampaignRules(control_share=0.5), seed=3
    )
    CampaignPair.objects.filter(campaign=campaign, in_control_slice=False).update(priority=1)
    always_control = random.Random(5)
    always_control.random = lambda: 0.0  # type: ignore[method-assign]
    assignment = claim_next_pair(campaign=campaign, reviewer=reviewer, rng=always_control)
    assert assignment is not None and assignment.from_control_slice
    assert assignment.campaign_pair.priority == 0


def test_an_expired_lease_returns_its_pair_to_the_pool(spavl_taxonomy, reviewer, other_reviewer):
    campaign = make_campaign(pairs=1, lease_minutes=10)
    start = timezone.now()
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer, now=start)
    assert claim_next_pair(campaign=campaign, reviewer=other_reviewer, now=start) is None
    later = start + timedelta(minutes=11)
    taken = claim_next_pair(campaign=campaign, reviewer=other_reviewer, now=later)
    assert taken is not None and taken.campaign_pair_id == lease.campaign_pair_id
    lease.refresh_from_db()
    assert lease.status == AssignmentStatus.EXPIRED
    with pytest.raises(LeaseExpired):
        renew_lease(assignment=lease, now=later)


def test_a_heartbeat_keeps_the_lease(spavl_taxonomy, reviewer, other_reviewer):
    campaign = make_campaign(pairs=1, lease_minutes=10)
    start = timezone.now()
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer, now=start)
    renew_lease(assignment=lease, now=start + timedelta(minutes=8))
    later = start + timedelta(minutes=15)
    assert claim_next_pair(campaign=campaign, reviewer=other_reviewer, now=later) is None


def test_a_lapsed_lease_nobody_took_is_taken_back_on_submit(spavl_taxonomy, reviewer):
    campaign = make_campaign(pairs=1, lease_minutes=10)
    start = timezone.now()
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer, now=start)
    give_blind_verdict(assignment=lease, verdict="left", now=start + timedelta(minutes=30))
    review = submit_review(assignment=lease, verdict="left", now=start + timedelta(minutes=31))
    assert review.submitted_at is not None
    assert CampaignPair.objects.get().slots_left == 0


def test_a_skipped_pair_goes_to_someone_else(spavl_taxonomy, reviewer, other_reviewer):
    campaign = make_campaign(pairs=1)
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer)
    skip_assignment(assignment=lease)
    assert claim_next_pair(campaign=campaign, reviewer=reviewer) is None
    assert claim_next_pair(campaign=campaign, reviewer=other_reviewer) is not None


def test_gold_pairs_are_mixed_in_for_every_reviewer(spavl_taxonomy, reviewer, other_reviewer):
    campaign = make_campaign(pairs=3, gold_rate=1.0)
    gold = campaign.pairs.order_by("pk").first()
    mark_gold(campaign_pair=gold, verdict=Verdict.A)
    for person in (reviewer, other_reviewer):
        assignment = claim_next_pair(campaign=campaign, reviewer=person)
        assert assignment is not None and assignment.is_gold
        assert assignment.campaign_pair_id == gold.pk


def test_it_draws_the_screen_side_per_assignment(spavl_taxonomy):
    campaign = make_campaign(pairs=1, overlap=40)
    sides = {
        claim_next_pair(campaign=campaign, reviewer=User.objects.create_user(f"u{i}")).left_side
        for i in range(40)
    }
    assert sides == {"a", "b"}


def test_claiming_takes_a_small_constant_number_of_queries(
    spavl_taxonomy, reviewer, django_assert_max_num_queries
):
    campaign = make_campaign(pairs=30)
    for i in range(10):
        claim_next_pair(campaign=campaign, reviewer=User.objects.create_user(f"x{i}"))
    # PostgreSQL: the claim statement, and at most every few seconds the stale-lease sweep.
    with django_assert_max_num_queries(2 if connection.vendor == "postgresql" else 7):
        assert claim_next_pair(campaign=campaign, reviewer=reviewer) is not None


def test_it_returns_stale_leases_at_most_every_few_seconds(
    spavl_taxonomy, reviewer, other_reviewer, django_assert_max_num_queries
):
    if connection.vendor != "postgresql":
        pytest.skip("the SQLite path returns stale leases on every claim")
    campaign = make_campaign(pairs=2, lease_minutes=10)
    start = timezone.now()
    claim_next_pair(campaign=campaign, reviewer=reviewer, now=start)
    with django_assert_max_num_queries(1):
        claim_next_pair(campaign=campaign, reviewer=other_reviewer, now=start)

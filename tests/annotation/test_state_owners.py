"""One owner per state change: the admin, the pages and the services change a campaign, a
lease, a final label, gold, the taxonomy and an adjudication the same way (issue 14's bugs)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from annotation.exceptions import ReviewError
from annotation.models import (
    Adjudication,
    AdjudicationStatus,
    Assignment,
    AssignmentStatus,
    Campaign,
    CampaignPair,
    FinalLabel,
    FinalLabelChange,
    Review,
    TaxonomyNode,
)
from annotation.services.assignment import claim_next_pair
from annotation.services.final_label import (
    PEOPLE_LABELS,
    decide_adjudication,
    reopen_adjudication,
)
from annotation.services.review import give_blind_verdict, submit_review, undo_review
from tests.factories import make_campaign, make_judgement

pytestmark = pytest.mark.django_db


def _person(name: str) -> User:
    return User.objects.get_or_create(username=name)[0]


def _review(campaign: Campaign, person: User, verdict: str = "a", **kwargs) -> Assignment:
    lease = claim_next_pair(campaign=campaign, reviewer=person, **kwargs)
    assert lease is not None
    screen = lease.to_screen_side(verdict)
    give_blind_verdict(assignment=lease, verdict=screen)
    submit_review(assignment=lease, verdict=screen)
    return lease


def _change_campaign(client, campaign: Campaign, **overrides):
    data = {
        "name": campaign.name,
        "is_active": "on" if campaign.is_active else "",
        "reviewers": [r.pk for r in campaign.reviewers.all()],
        "overlap": str(campaign.overlap),
        "lease_minutes": str(campaign.lease_minutes),
        "control_share": str(campaign.control_share),
        "gold_rate": str(campaign.gold_rate),
        "judge_policy": campaign.judge_policy,
        "break_after_reviews": str(campaign.break_after_reviews),
        "break_after_minutes": str(campaign.break_after_minutes),
    } | overrides
    data = {key: value for key, value in data.items() if value != ""}
    url = reverse("admin:annotation_campaign_change", args=[campaign.pk])
    return client.post(url, data, follow=True)


# Campaign rules -----------------------------------------------------------------------------


def test_raising_the_overlap_in_the_admin_gives_every_pair_its_new_slots(
    client, spavl_taxonomy, staff_admin
):
    first, second = _person("r1"), _person("r2")
    campaign = make_campaign(pairs=1, reviewers=[first, second])
    client.force_login(staff_admin)
    lease = claim_next_pair(campaign=campaign, reviewer=first)
    assert lease is not None

    _change_campaign(client, campaign, overlap="2")

    assert CampaignPair.objects.get().slots_left == 1  # two slots, one held by the lease
    screen = lease.to_screen_side("a")
    give_blind_verdict(assignment=lease, verdict=screen)
    submit_review(assignment=lease, verdict=screen)
    pair = lease.campaign_pair.pair
    pair.refresh_from_db()
    assert pair.final_label not in PEOPLE_LABELS  # one of two reviews: not settled yet
    _review(campaign, second, "a")
    pair.refresh_from_db()
    assert (pair.final_label, pair.final_chosen) == (FinalLabel.CONFIRMED, "a")


def test_lowering_the_overlap_settles_pairs_that_now_have_enough_reviews(
    client, spavl_taxonomy, staff_admin
):
    first, second = _person("r1"), _person("r2")
    campaign = make_campaign(pairs=1, reviewers=[first, second], overlap=2)
    lease = _review(campaign, first, "b")
    pair = lease.campaign_pair.pair
    pair.refresh_from_db()
    assert pair.final_label not in PEOPLE_LABELS

    client.force_login(staff_admin)
    _change_campaign(client, campaign, overlap="1")

    pair.refresh_from_db()
    assert (pair.final_label, pair.final_chosen) == (FinalLabel.FLIPPED, "b")
    assert CampaignPair.objects.get().slots_left == 0
    assert claim_next_pair(campaign=campaign, reviewer=second) is None


def test_an_overlap_more_reviewers_than_the_campaign_has_is_refused(
    client, spavl_taxonomy, staff_admin
):
    campaign = make_campaign(pairs=1, reviewers=[_person("r1")])
    client.force_login(staff_admin)
    page = _change_campaign(client, campaign, overlap="3")
    assert "overlap 3 needs at least 3 reviewers" in page.content.decode()
    campaign.refresh_from_db()
    assert campaign.overlap == 1 and CampaignPair.objects.get().slots_left == 1


def test_removing_a_reviewer_in_the_admin_returns_their_lease(client, spavl_taxonomy, staff_admin):
    first, second = _person("r1"), _person("r2")
    campaign = make_campaign(pairs=1, reviewers=[first, second])
    lease = claim_next_pair(campaign=campaign, reviewer=first)
    assert lease is not None and CampaignPair.objects.get().slots_left == 0
    client.force_login(staff_admin)

    _change_campaign(client, campaign, reviewers=[second.pk])

    lease.refresh_from_db()
    assert lease.status == AssignmentStatus.EXPIRED
    assert claim_next_pair(campaign=campaign, reviewer=second) is not None


# Leases ---------------------------------------------------------------------------------------


def test_a_review_submitted_after_its_lease_lapsed_keeps_the_renewed_expiry(
    spavl_taxonomy, reviewer
):
    campaign = make_campaign(pairs=1, reviewers=[reviewer], lease_minutes=10)
    claimed = timezone.now() - timedelta(minutes=31)
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer, now=claimed)
    assert lease is not None
    give_blind_verdict(assignment=lease, verdict="left", now=claimed)
    submitted = claimed + timedelta(minutes=31)

    submit_review(assignment=lease, verdict="left", now=submitted)

    lease.refresh_from_db()
    assert lease.expires_at == submitted + timedelta(minutes=10)
    undo_review(assignment=lease, now=submitted + timedelta(minutes=1))  # not refused
    lease.refresh_from_db()
    assert lease.status == AssignmentStatus.LIVE


# Claim paths ------------------------------------------------------------------------------


@pytest.fixture
def mid_review(client, spavl_taxonomy, reviewer):
    """A reviewer on a two-pair campaign with the first pair's blind verdict given."""
    campaign = make_campaign(pairs=2, reviewers=[reviewer])
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer)
    assert lease is not None
    give_blind_verdict(assignment=lease, verdict="left")
    client.force_login(reviewer)
    return campaign, lease


def _remove(campaign: Campaign, reviewer: User) -> None:
    campaign.reviewers.remove(reviewer)


def _close(campaign: Campaign, reviewer: User) -> None:
    Campaign.objects.filter(pk=campaign.pk).update(is_active=False)


@pytest.mark.parametrize("change", [_remove, _close], ids=["removed", "closed"])
@pytest.mark.parametrize("action", ["submit", "skip", "prefetch"])
def test_no_claim_path_hands_out_a_pair_once_the_reviewer_may_not_claim(
    client, mid_review, reviewer, change, action
):
    campaign, lease = mid_review
    change(campaign, reviewer)
    url = reverse(f"review:{action}", args=[lease.pk])

    response = client.post(url, {"verdict": "left"}, follow=action != "prefetch")

    assert response.status_code in (200, 204)
    assert Assignment.objects.filter(reviewer=reviewer).count() == 1  # nothing new claimed
    if action != "prefetch":
        assert response.redirect_chain[-1][0] == reverse("review:home")


def test_submit_and_next_still_claims_for_a_member_of_an_active_campaign(client, mid_review):
    campaign, lease = mid_review
    client.post(reverse("review:submit", args=[lease.pk]), {"verdict": "left"})
    assert Assignment.objects.filter(campaign=campaign).count() == 2


# Final labels, gold and deletes in the admin ----------------------------------------------


def test_the_pair_admin_cannot_edit_a_final_label(client, spavl_taxonomy, staff_admin):
    campaign = make_campaign(pairs=1)
    pair = campaign.pairs.get().pair
    client.force_login(staff_admin)
    url = reverse("admin:annotation_pair_change", args=[pair.pk])
    page = client.get(url)
    assert page.status_code == 200
    client.post(url, {"final_label": FinalLabel.EXCLUDED, "final_chosen": ""})
    pair.refresh_from_db()
    assert pair.final_label == ""
    assert not FinalLabelChange.objects.filter(pair=pair).exists()


def test_gold_in_the_admin_needs_a_verdict_and_unmarking_reopens_the_slots(
    client, spavl_taxonomy, staff_admin
):
    campaign = make_campaign(pairs=1, overlap=2, reviewers=[_person("r1"), _person("r2")])
    campaign_pair = campaign.pairs.get()
    client.force_login(staff_admin)
    url = reverse("admin:annotation_campaignpair_change", args=[campaign_pair.pk])

    refused = client.post(url, {"is_gold": "on", "gold_verdict": ""})
    campaign_pair.refresh_from_db()
    assert refused.status_code == 200 and not campaign_pair.is_gold

    client.post(url, {"is_gold": "on", "gold_verdict": "b"})
    campaign_pair.refresh_from_db()
    assert (campaign_pair.is_gold, campaign_pair.gold_verdict) == (True, "b")

    CampaignPair.objects.filter(pk=campaign_pair.pk).update(slots_left=0)
    client.post(url, {"gold_verdict": ""})
    campaign_pair.refresh_from_db()
    assert (campaign_pair.is_gold, campaign_pair.gold_verdict) == (False, "")
    assert campaign_pair.slots_left == 2


def test_deleting_a_review_in_the_admin_resettles_its_pair(client, spavl_taxonomy, staff_admin):
    person = _person("r1")
    campaign = make_campaign(pairs=1, reviewers=[person])
    lease = _review(campaign, person, "b")
    pair = lease.campaign_pair.pair
    pair.refresh_from_db()
    assert pair.final_label == FinalLabel.FLIPPED
    review = Review.objects.get()
    client.force_login(staff_admin)

    url = reverse("admin:annotation_review_delete", args=[review.pk])
    client.post(url, {"post": "yes"})

    assert not Review.objects.exists()
    pair.refresh_from_db()
    assert (pair.final_label, pair.final_chosen) == (FinalLabel.IMPORTED, "a")
    assert CampaignPair.objects.get().slots_left == 1
    lease.refresh_from_db()
    assert lease.status == AssignmentStatus.EXPIRED
    assert claim_next_pair(campaign=campaign, reviewer=person) is None  # never offered again


def test_a_reviewed_pair_cannot_be_deleted_in_the_admin(client, spavl_taxonomy, staff_admin):
    person = _person("r1")
    campaign = make_campaign(pairs=1, reviewers=[person])
    pair = _review(campaign, person).campaign_pair.pair
    client.force_login(staff_admin)
    response = client.post(reverse("admin:annotation_pair_delete", args=[pair.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Review.objects.filter(pair=pair).exists()


def test_a_rename_and_a_move_in_the_taxonomy_admin_are_one_change(
    client, spavl_taxonomy, staff_admin
):
    node = TaxonomyNode.objects.active().subcategories().get(key="bully")
    retired = TaxonomyNode.objects.active().filter(level=2).exclude(pk=node.parent_id).first()
    assert retired is not None
    TaxonomyNode.objects.filter(pk=retired.pk).update(retired_at=timezone.now())
    client.force_login(staff_admin)
    url = reverse("admin:annotation_taxonomynode_change", args=[node.pk])

    page = client.post(
        url, {"key": "bullying", "name": node.name, "parent": retired.pk}, follow=True
    )

    assert "is retired" in page.content.decode()
    node.refresh_from_db()
    assert node.key == "bully"  # the failed move took the rename with it


def test_a_node_added_in_the_admin_is_recorded_with_it(client, spavl_taxonomy, staff_admin):
    from annotation.models import TaxonomyChange

    parent = TaxonomyNode.objects.active().filter(level=2).first()
    assert parent is not None
    version = TaxonomyChange.current_version()
    client.force_login(staff_admin)
    client.post(
        reverse("admin:annotation_taxonomynode_add"),
        {"level": 3, "key": "doxxing", "name": "doxxing", "parent": parent.pk},
    )
    node = TaxonomyNode.objects.get(key="doxxing")
    assert TaxonomyChange.objects.get(version=version + 1).node == node


# Adjudication -----------------------------------------------------------------------------


def test_a_decided_adjudication_is_not_decided_again_unless_reopened(
    spavl_taxonomy, adjudicator, staff_admin
):
    campaign = make_campaign(pairs=1)
    campaign_pair = campaign.pairs.get()
    adjudication = Adjudication.objects.create(
        campaign_pair=campaign_pair, pair=campaign_pair.pair, reason="reviewers disagree"
    )
    decide_adjudication(adjudication=adjudication, verdict="b", by=adjudicator, note="first")

    with pytest.raises(ReviewError, match="already decided"):
        decide_adjudication(adjudication=adjudication, verdict="a", by=staff_admin, note="x")
    adjudication.refresh_from_db()
    assert (adjudication.verdict, adjudication.note) == ("b", "first")
    assert adjudication.decided_by == adjudicator

    reopen_adjudication(adjudication=adjudication, by=staff_admin, reason="wrong image")
    adjudication.refresh_from_db()
    assert adjudication.status == AdjudicationStatus.OPEN
    decide_adjudication(adjudication=adjudication, verdict="a", by=staff_admin)
    pair = campaign_pair.pair
    pair.refresh_from_db()
    assert (pair.final_label, pair.final_chosen) == (FinalLabel.ADJUDICATED, "a")
    history = list(adjudication.events.order_by("pk").values_list("action", "verdict", "by"))
    assert history == [
        ("decided", "b", adjudicator.pk),
        ("reopened", "", staff_admin.pk),
        ("decided", "a", staff_admin.pk),
    ]


def test_the_adjudication_page_refuses_a_second_decision(client, spavl_taxonomy, adjudicator):
    campaign = make_campaign(pairs=1)
    campaign_pair = campaign.pairs.get()
    adjudication = Adjudication.objects.create(
        campaign_pair=campaign_pair, pair=campaign_pair.pair, reason="reviewers disagree"
    )
    decide_adjudication(adjudication=adjudication, verdict="b", by=adjudicator)
    client.force_login(adjudicator)
    url = reverse("adjudication:page", args=[adjudication.pk])
    page = client.post(url, {"verdict": "a"}, follow=True)
    assert "already decided" in page.content.decode()
    adjudication.refresh_from_db()
    assert adjudication.verdict == "b"


# Pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p_a_better", "prefers_a", "decided_by", "a_is_left", "expected"),
    [
        (0.7, True, "preference", True, "left"),
        (0.7, True, "preference", False, "right"),
        (0.7, False, "safety", True, "right"),  # safety decided against p
        (0.5, False, "preference", True, "right"),  # P(A) > 0.5 is the rule: 0.5 is B
        (0.5, False, "preference", False, "left"),
    ],
)
def test_the_confirm_page_names_the_response_the_judge_chose(
    client, spavl_taxonomy, reviewer, p_a_better, prefers_a, decided_by, a_is_left, expected
):
    campaign = make_campaign(pairs=1, reviewers=[reviewer])
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer)
    assert lease is not None
    Assignment.objects.filter(pk=lease.pk).update(left_side="a" if a_is_left else "b")
    judgement = make_judgement(pair=lease.campaign_pair.pair, p_a_better=p_a_better)
    judgement.prefers_a, judgement.decided_by = prefers_a, decided_by
    judgement.save(update_fields=["prefers_a", "decided_by"])
    give_blind_verdict(assignment=lease, verdict="left")
    client.force_login(reviewer)

    page = client.get(reverse("review:assignment", args=[lease.pk])).content.decode()

    assert f"The judge prefers <strong>{expected}</strong>" in page


def test_the_image_add_page_does_not_fail(client, spavl_taxonomy, staff_admin):
    client.force_login(staff_admin)
    response = client.get(reverse("admin:annotation_image_add"))
    assert response.status_code in (200, 403)


def test_a_full_review_page_shows_each_message_once(client, mid_review):
    campaign, lease = mid_review
    # A second, different blind verdict is refused with a message on the full page (409).
    page = client.post(reverse("review:blind_verdict", args=[lease.pk]), {"verdict": "right"})
    assert page.status_code == 409
    assert page.content.decode().count("already revealed") == 1

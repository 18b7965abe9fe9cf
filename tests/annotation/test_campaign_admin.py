"""Admins create campaigns through the admin (create_campaign); adjudicators set gold verdicts."""

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from annotation.models import Adjudication, Campaign, CampaignPair, TaxonomyNode
from annotation.services.assignment import claim_next_pair
from tests.factories import make_campaign, make_pair

pytestmark = pytest.mark.django_db

ADD_URL = "admin:annotation_campaign_add"


def _campaign_form(**overrides) -> dict:
    data = {
        "name": "spring review",
        "overlap": "2",
        "lease_minutes": "15",
        "control_share": "0.25",
        "gold_rate": "0.1",
        "judge_policy": "with_judge",
        "break_after_reviews": "30",
        "break_after_minutes": "40",
        "seed": "42",
    }
    return data | overrides


def test_an_admin_creates_a_campaign_that_selects_pairs_and_draws_the_control_slice(
    client, spavl_taxonomy, staff_admin, reviewer
):
    for _ in range(8):
        make_pair(subcategory_key="bully")
    for _ in range(3):
        make_pair(subcategory_key="harass")
    bully = TaxonomyNode.objects.active().subcategories().get(key="bully")
    client.force_login(staff_admin)
    assert client.get(reverse(ADD_URL)).status_code == 200

    response = client.post(
        reverse(ADD_URL),
        _campaign_form(reviewers=[reviewer.pk], taxonomy_nodes=[bully.pk]),
        follow=True,
    )

    campaign = Campaign.objects.get()
    assert response.status_code == 200
    assert "8 pairs selected for “spring review”" in response.content.decode()
    assert (campaign.overlap, campaign.lease_minutes, campaign.seed) == (2, 15, 42)
    assert (campaign.control_share, campaign.gold_rate) == (0.25, 0.1)
    assert campaign.created_by == staff_admin
    assert list(campaign.reviewers.all()) == [reviewer]
    assert list(campaign.taxonomy_nodes.all()) == [bully]
    pairs = CampaignPair.objects.filter(campaign=campaign)
    assert pairs.count() == 8
    assert {p.pair.question.subcategory_id for p in pairs.select_related("pair__question")} == {
        bully.pk
    }
    assert pairs.filter(in_control_slice=True).count() == 2  # round(0.25 × 8)
    assert set(pairs.values_list("slots_left", flat=True)) == {2}
    assert sorted(pairs.values_list("rank", flat=True)) == list(range(8))
    assert claim_next_pair(campaign=campaign, reviewer=reviewer) is not None


def test_the_seed_is_drawn_when_left_empty_and_question_types_filter(
    client, spavl_taxonomy, staff_admin
):
    make_pair()
    client.force_login(staff_admin)
    client.post(reverse(ADD_URL), _campaign_form(seed="", question_types=["hardq"]))
    campaign = Campaign.objects.get()
    assert campaign.seed is not None and campaign.question_types == ["hardq"]
    assert not campaign.pairs.exists()  # the factory's questions are of unknown type


def test_it_rejects_rules_out_of_range(client, spavl_taxonomy, staff_admin):
    client.force_login(staff_admin)
    response = client.post(reverse(ADD_URL), _campaign_form(control_share="1.5", overlap="0"))
    assert response.status_code == 200
    assert not Campaign.objects.exists()
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"control_share", "overlap"}


def test_a_reviewer_cannot_reach_the_add_view(client, spavl_taxonomy, reviewer):
    client.force_login(reviewer)
    response = client.post(reverse(ADD_URL), _campaign_form())
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert not Campaign.objects.exists()


def test_the_change_view_edits_the_rules_through_the_service_and_shows_the_pair_count(
    client, spavl_taxonomy, staff_admin, reviewer, other_reviewer
):
    campaign = make_campaign(pairs=3, reviewers=[reviewer, other_reviewer])
    client.force_login(staff_admin)
    page = client.get(reverse("admin:annotation_campaign_change", args=[campaign.pk]))
    assert "Pairs selected" in page.content.decode()
    data = _campaign_form(
        is_active="on", name="renamed", reviewers=[reviewer.pk, other_reviewer.pk]
    )
    client.post(reverse("admin:annotation_campaign_change", args=[campaign.pk]), data)
    campaign.refresh_from_db()
    assert (campaign.name, campaign.overlap, campaign.lease_minutes) == ("renamed", 2, 15)
    assert campaign.pairs.count() == 3
    # The new overlap reached every pair (it did not before: slots kept the old overlap).
    assert set(campaign.pairs.values_list("slots_left", flat=True)) == {2}


@pytest.fixture
def adjudication(spavl_taxonomy, reviewer):
    campaign = make_campaign(pairs=1, reviewers=[reviewer])
    campaign_pair = campaign.pairs.get()
    return Adjudication.objects.create(
        campaign_pair=campaign_pair, pair=campaign_pair.pair, reason="reviewers disagree"
    )


def test_an_adjudicator_makes_the_pair_a_gold_pair(
    client, adjudication, adjudicator, django_assert_max_num_queries
):
    client.force_login(adjudicator)
    url = reverse("adjudication:gold", args=[adjudication.pk])
    response = client.post(url, {"gold_verdict": "b"}, follow=True)
    campaign_pair = CampaignPair.objects.get(pk=adjudication.campaign_pair_id)
    assert (campaign_pair.is_gold, campaign_pair.gold_verdict) == (True, "b")
    assert response.redirect_chain[-1][0] == reverse("adjudication:page", args=[adjudication.pk])
    html = response.content.decode()
    assert "is now a gold pair" in html and "known verdict <strong>response B better" in html
    with django_assert_max_num_queries(12):
        client.get(reverse("adjudication:page", args=[adjudication.pk]))


def test_a_gold_verdict_must_be_a_verdict(client, adjudication, adjudicator):
    client.force_login(adjudicator)
    url = reverse("adjudication:gold", args=[adjudication.pk])
    response = client.post(url, {"gold_verdict": "left"})
    assert response.status_code == 422
    assert not CampaignPair.objects.get(pk=adjudication.campaign_pair_id).is_gold


@pytest.mark.parametrize("persona", ["reviewer", "plain"])
def test_only_adjudicators_set_gold_verdicts(client, adjudication, reviewer, persona):
    user = reviewer if persona == "reviewer" else User.objects.create_user("plain")
    Group.objects.get_or_create(name="adjudicator")
    client.force_login(user)
    url = reverse("adjudication:gold", args=[adjudication.pk])
    assert client.post(url, {"gold_verdict": "a"}).status_code == 404
    assert not CampaignPair.objects.get(pk=adjudication.campaign_pair_id).is_gold

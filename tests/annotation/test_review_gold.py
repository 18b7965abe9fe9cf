import pytest
from django.urls import reverse

from annotation.services.assignment import claim_next_pair
from annotation.services.campaigns import mark_gold
from annotation.services.review import give_blind_verdict, submit_review
from tests.factories import make_campaign

pytestmark = pytest.mark.django_db


def test_admins_see_each_reviewers_gold_accuracy(client, spavl_taxonomy, reviewer, staff_admin):
    campaign = make_campaign(pairs=2, gold_rate=1.0)
    for campaign_pair in campaign.pairs.all():
        mark_gold(campaign_pair=campaign_pair, verdict="a")
    for _ in range(2):
        lease = claim_next_pair(campaign=campaign, reviewer=reviewer)
        assert lease is not None and lease.is_gold
        give_blind_verdict(assignment=lease, verdict=lease.to_screen_side("a"))
        last = lease.campaign_pair_id == max(campaign.pairs.values_list("pk", flat=True))
        final = lease.to_screen_side("b" if last else "a")
        submit_review(assignment=lease, verdict=final)
    client.force_login(staff_admin)
    page = client.get(reverse("admin:annotation_campaign_change", args=[campaign.pk]))
    assert "rita: 1 of 2 correct (50%)" in page.content.decode()
    for campaign_pair in campaign.pairs.select_related("pair"):
        assert campaign_pair.pair.final_label == ""  # gold reviews never set a final label

"""Every object URL of the review side against every persona: 404 for missing and not-yours."""

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from annotation.models import Adjudication
from annotation.services.assignment import claim_next_pair
from tests.factories import make_campaign

pytestmark = pytest.mark.django_db

ASSIGNMENT_URLS = [
    ("get", "annotation:assignment"),
    ("post", "annotation:blind_verdict"),
    ("post", "annotation:submit"),
    ("post", "annotation:skip"),
    ("post", "annotation:undo"),
    ("post", "annotation:heartbeat"),
    ("post", "annotation:prefetch"),
]


@pytest.fixture
def world(spavl_taxonomy, reviewer, other_reviewer, adjudicator, staff_admin):
    campaign = make_campaign(pairs=3, reviewers=[reviewer])
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer)
    assert lease is not None
    adjudication = Adjudication.objects.create(
        campaign_pair=lease.campaign_pair, pair=lease.campaign_pair.pair, reason="test"
    )
    group_admin = User.objects.create_user("gadmin")
    group_admin.groups.add(Group.objects.get_or_create(name="admin")[0])
    return {
        "campaign": campaign,
        "lease": lease,
        "adjudication": adjudication,
        "personas": {
            "reviewer": reviewer,
            "other reviewer": other_reviewer,
            "adjudicator": adjudicator,
            "admin": staff_admin,
            "group admin": group_admin,
            "anonymous": None,
        },
    }


# Who may reach each object, by persona; everyone else gets 404 (anonymous: login redirect).
ALLOWED = {
    "assignment": {"reviewer"},
    "campaign": {"reviewer", "admin", "group admin"},
    "adjudication": {"adjudicator", "admin", "group admin"},
}


def _call(client, method, url):
    return client.post(url) if method == "post" else client.get(url)


@pytest.mark.parametrize(
    "persona", ["reviewer", "other reviewer", "adjudicator", "admin", "group admin", "anonymous"]
)
def test_the_access_matrix(client, world, persona):
    user = world["personas"][persona]
    if user is not None:
        client.force_login(user)
    lease, campaign, adjudication = world["lease"], world["campaign"], world["adjudication"]
    targets = [
        ("assignment", method, reverse(name, args=[lease.pk])) for method, name in ASSIGNMENT_URLS
    ]
    targets += [
        ("campaign", "post", reverse("annotation:campaign_next", args=[campaign.pk])),
        ("adjudication", "get", reverse("annotation:adjudication", args=[adjudication.pk])),
        ("adjudication", "get", reverse("annotation:adjudication_queue")),
        ("adjudication", "post", reverse("annotation:adjudication_gold", args=[adjudication.pk])),
    ]
    for kind, method, url in targets:
        response = _call(client, method, url)
        if user is None:
            assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
        elif persona in ALLOWED[kind]:
            # Reached: a page, a redirect, or a form error for the empty POST; never 404/500.
            assert response.status_code in (200, 204, 302, 409, 422), (persona, url)
        else:
            assert response.status_code == 404, (persona, url, response.status_code)


@pytest.mark.parametrize(
    "name",
    [name for _, name in ASSIGNMENT_URLS]
    + ["annotation:campaign_next", "annotation:adjudication", "annotation:adjudication_gold"],
)
def test_a_missing_object_is_404_even_for_an_admin(client, world, name):
    client.force_login(world["personas"]["admin"])
    url = reverse(name, args=[999_999])
    method = "get" if name in ("annotation:assignment", "annotation:adjudication") else "post"
    assert _call(client, method, url).status_code == 404

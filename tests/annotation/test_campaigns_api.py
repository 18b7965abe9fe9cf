"""/api/v1/campaigns/ with tokens: admins create campaigns with the admin's selection, rules and
checks, change them and their reviewers; analysts follow the progress; everyone else gets
404, and a read token changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation.models import Assignment, AssignmentStatus, Campaign, QuestionType
from annotation.services.assignment import claim_next_pair
from annotation.services.campaigns import mark_gold
from annotation.services.review import give_blind_verdict, submit_review
from spavl_web.tokens import create_token
from tests.factories import make_campaign, make_pair, make_question, subcategory

pytestmark = pytest.mark.django_db
CAMPAIGNS = "/api/v1/campaigns/"


def _api(user: User, *scopes: str) -> Client:
    _, secret = create_token(user=user, name="test", scopes=list(scopes))
    return Client(HTTP_AUTHORIZATION=f"Token {secret}")


def _analyst() -> User:
    user = User.objects.create_user("ana")
    user.user_permissions.add(Permission.objects.get(codename="view_agreement"))
    return User.objects.get(pk=user.pk)


def _submit(campaign: Campaign, reviewer: User, verdict: str = "a") -> None:
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer)
    assert lease is not None
    screen = lease.to_screen_side(verdict)
    give_blind_verdict(assignment=lease, verdict=screen)
    submit_review(assignment=lease, verdict=screen)


@pytest.fixture
def admin(staff_admin: User) -> Client:
    return _api(staff_admin, "admin")


def test_an_admin_creates_a_campaign_with_the_selection_and_rules_asked(
    spavl_taxonomy: None, admin: Client, staff_admin: User, reviewer: User, other_reviewer: User
) -> None:
    admin_user = staff_admin
    bully = subcategory("bully")
    assert bully.parent is not None
    wanted = [make_pair(question=make_question(question_type=QuestionType.EASY)) for _ in range(4)]
    make_pair(question=make_question(question_type=QuestionType.HARD_QUESTION))  # other type
    make_pair(question=make_question(subcategory_key=None, question_type=QuestionType.EASY))
    body = {
        "name": "  easy bullying  ",
        "selection": {"taxonomy_nodes": [bully.parent.pk], "question_types": ["easy"]},
        "rules": {"overlap": 2, "lease_minutes": 20, "control_share": 0.5, "gold_rate": 0.1},
        "reviewers": ["rita", "otto"],
        "seed": 42,
    }
    created = admin.post(CAMPAIGNS, body, "application/json")
    assert created.status_code == 201, created.json()
    answer = created.json()
    campaign = Campaign.objects.get(pk=answer["id"])
    assert (campaign.name, campaign.seed, campaign.created_by) == ("easy bullying", 42, admin_user)
    assert answer["selection"] == {
        "judge_run": None,
        "taxonomy_nodes": [bully.parent.pk],
        "question_types": ["easy"],
        "flagged_only": False,
    }
    assert answer["rules"] == {
        "overlap": 2,
        "lease_minutes": 20,
        "control_share": 0.5,
        "gold_rate": 0.1,
        "judge_policy": "reviewers",
        "break_after_reviews": 40,
        "break_after_minutes": 45,
        "review_mode": "single",
        "per_response_safety": False,
    }
    assert answer["reviewers"] == ["otto", "rita"]
    assert sorted(campaign.pairs.values_list("pair_id", flat=True)) == [p.pk for p in wanted]
    assert campaign.pairs.filter(in_control_slice=True).count() == 2
    nothing_yet = {"reviews_submitted": 0, "live_leases": 0}
    assert answer["progress"] == {
        "pairs": 4,
        "open": 4,
        "leased": 0,
        "done": 0,
        "gold": 0,
        "reviewers": [{"username": "otto"} | nothing_yet, {"username": "rita"} | nothing_yet],
    }


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"reviewers": ["rita", "nobody", "ghost"]}, "reviewers", "'nobody', 'ghost'"),
        ({"selection": {"taxonomy_nodes": [999_999]}}, "selection", "999999"),
        ({"selection": {"judge_run": 999_999}}, "selection", "no judge run has the id 999999"),
        ({"selection": {"question_types": ["riddle"]}}, "selection", "riddle"),
        ({"rules": {"control_share": 1.5}}, "rules", "less than or equal to 1"),
        ({"rules": {"overlap": 0}}, "rules", "greater than or equal to 1"),
        ({"rules": {"lease_minutes": 1441}}, "rules", "less than or equal to 1440"),
        ({"rules": {"judge_policy": "coin"}}, "rules", "coin"),
        ({"rules": {"break_after_reviews": 0}}, "rules", "greater than or equal to 1"),
        ({"name": "   "}, "name", "blank"),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
    ],
)
def test_a_bad_campaign_is_refused_saying_what_is_wrong(
    spavl_taxonomy: None, admin: Client, reviewer: User, body: dict[str, Any], field: str, says: str
) -> None:
    refused = admin.post(CAMPAIGNS, {"name": "c"} | body, "application/json")
    assert refused.status_code == 400
    assert says in str(refused.json()[field])
    assert not Campaign.objects.exists()


def test_progress_counts_pairs_open_leased_done_and_gold_and_each_reviewer(
    spavl_taxonomy: None, reviewer: User, other_reviewer: User
) -> None:
    campaign = make_campaign(pairs=5, reviewers=[reviewer, other_reviewer])
    gold = campaign.pairs.order_by("rank").last()
    assert gold is not None
    mark_gold(campaign_pair=gold, verdict="a")
    _submit(campaign, other_reviewer)
    _submit(campaign, other_reviewer)
    assert claim_next_pair(campaign=campaign, reviewer=reviewer) is not None
    # A lease that ran out holds nothing: its pair is open again.
    stale = claim_next_pair(
        campaign=campaign, reviewer=other_reviewer, now=timezone.now() - timedelta(hours=1)
    )
    assert stale is not None and not stale.campaign_pair.is_gold
    progress = _api(_analyst(), "read").get(f"{CAMPAIGNS}{campaign.pk}/").json()["progress"]
    assert progress == {
        "pairs": 5,
        "open": 1,
        "leased": 1,
        "done": 2,
        "gold": 1,
        "reviewers": [
            {"username": "otto", "reviews_submitted": 2, "live_leases": 0},
            {"username": "rita", "reviews_submitted": 0, "live_leases": 1},
        ],
    }


def test_a_pair_is_done_only_with_its_overlap_of_reviews(
    spavl_taxonomy: None, reviewer: User, other_reviewer: User, admin: Client
) -> None:
    campaign = make_campaign(pairs=1, overlap=2, reviewers=[reviewer, other_reviewer])
    _submit(campaign, reviewer)
    halfway = admin.get(f"{CAMPAIGNS}{campaign.pk}/").json()["progress"]
    _submit(campaign, other_reviewer)
    after = admin.get(f"{CAMPAIGNS}{campaign.pk}/").json()["progress"]
    assert (halfway["open"], halfway["done"]) == (1, 0)
    assert (after["open"], after["done"]) == (0, 1)


def test_the_detail_takes_the_same_queries_whatever_the_campaigns_size(
    spavl_taxonomy: None, reviewer: User, other_reviewer: User, admin: Client
) -> None:
    small = make_campaign(pairs=1, reviewers=[reviewer])
    _submit(small, reviewer)
    third = User.objects.create_user("theo")
    large = make_campaign(pairs=12, reviewers=[reviewer, other_reviewer, third])
    for person in (reviewer, other_reviewer, third):
        _submit(large, person)
        assert claim_next_pair(campaign=large, reviewer=person) is not None
    admin.get(CAMPAIGNS)  # the token's first use of the minute is noted: not counted here
    counts = []
    for campaign in (small, large):
        with CaptureQueriesContext(connection) as queries:
            assert admin.get(f"{CAMPAIGNS}{campaign.pk}/").status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_an_admin_changes_rules_name_and_state_and_an_impossible_overlap_is_409(
    spavl_taxonomy: None, reviewer: User, admin: Client
) -> None:
    campaign = make_campaign(pairs=2, reviewers=[reviewer], lease_minutes=10)
    assert claim_next_pair(campaign=campaign, reviewer=reviewer) is not None
    url = f"{CAMPAIGNS}{campaign.pk}/"
    changed = admin.patch(
        url, {"name": "renamed", "rules": {"lease_minutes": 30}}, "application/json"
    )
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["name"], changed.json()["rules"]["lease_minutes"]) == ("renamed", 30)
    assert changed.json()["rules"]["overlap"] == 1  # left out: kept
    refused = admin.patch(url, {"rules": {"overlap": 3}, "is_active": False}, "application/json")
    assert refused.status_code == 409
    assert "needs at least 3 reviewers" in refused.json()["detail"]
    campaign.refresh_from_db()
    assert (campaign.overlap, campaign.is_active) == (1, True)  # nothing of it was applied
    closed = admin.patch(url, {"is_active": False}, "application/json")
    assert closed.json()["is_active"] is False and closed.json()["progress"]["leased"] == 0
    assert not Assignment.objects.filter(campaign=campaign, status=AssignmentStatus.LIVE).exists()


def test_reviewers_are_added_by_name_and_removed_with_their_leases(
    spavl_taxonomy: None, reviewer: User, other_reviewer: User, admin: Client
) -> None:
    campaign = make_campaign(pairs=2, reviewers=[reviewer])
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer)
    assert lease is not None
    reviewers = f"{CAMPAIGNS}{campaign.pk}/reviewers/"
    added = admin.post(reviewers, {"usernames": ["otto", "rita"]}, "application/json")
    unknown = admin.post(reviewers, {"usernames": ["otto", "nobody"]}, "application/json")
    assert added.status_code == 200 and added.json()["reviewers"] == ["otto", "rita"]
    assert unknown.status_code == 400 and "'nobody'" in str(unknown.json()["usernames"])
    assert admin.delete(f"{reviewers}rita/").status_code == 204
    assert admin.delete(f"{reviewers}rita/").status_code == 404  # no longer on it
    assert admin.delete(f"{reviewers}nobody/").status_code == 404
    assert list(campaign.reviewers.values_list("username", flat=True)) == ["otto"]
    lease.refresh_from_db()
    assert lease.status == AssignmentStatus.EXPIRED


def test_analysts_read_admins_change_and_scopes_hold(
    spavl_taxonomy: None, staff_admin: User, reviewer: User, client: Client
) -> None:
    campaign = make_campaign(pairs=1, reviewers=[reviewer])
    detail = f"{CAMPAIGNS}{campaign.pk}/"
    body = {"name": "mine"}
    admin_reading = _api(staff_admin, "read")
    analyst = _analyst()
    assert admin_reading.get(detail).status_code == 200
    assert admin_reading.post(CAMPAIGNS, body, "application/json").status_code == 403
    assert admin_reading.patch(detail, body, "application/json").status_code == 403
    assert admin_reading.delete(f"{detail}reviewers/rita/").status_code == 403
    assert _api(analyst, "read").get(detail).status_code == 200
    client.force_login(analyst)  # a session: the role decides, and an analyst is no admin
    assert client.post(CAMPAIGNS, body, "application/json").status_code == 404
    assert client.patch(detail, body, "application/json").status_code == 404
    # A reviewer on the campaign reads it on the review pages, not here.
    rita = _api(reviewer, "read")
    assert rita.get(CAMPAIGNS).status_code == 404 and rita.get(detail).status_code == 404
    assert Campaign.objects.get().name == campaign.name


def test_the_list_pages_through_every_campaign_once(spavl_taxonomy: None, admin: Client) -> None:
    made = [make_campaign(pairs=1).pk for _ in range(5)]
    seen: list[int] = []
    url: str | None = f"{CAMPAIGNS}?page_size=2"
    while url:
        page = admin.get(url).json()
        seen += [campaign["id"] for campaign in page["results"]]
        url = page["next"]
    assert seen == sorted(made)


def test_a_page_of_campaigns_takes_the_same_queries_whatever_its_size(
    spavl_taxonomy: None, admin: Client, reviewer: User, other_reviewer: User
) -> None:
    admin.get(CAMPAIGNS)  # the token's first use of the minute is noted: not counted here
    counts = []
    for more in (1, 4):
        for _ in range(more):
            campaign = make_campaign(pairs=1, reviewers=[reviewer, other_reviewer])
            campaign.taxonomy_nodes.set([subcategory("bully")])
        with CaptureQueriesContext(connection) as queries:
            page = admin.get(CAMPAIGNS).json()
        assert len(page["results"]) == Campaign.objects.count()
        assert page["results"][-1]["reviewers"] == ["otto", "rita"]
        counts.append(len(queries))
    assert counts[0] == counts[1]

"""/api/v1/reviews/ and /api/v1/adjudications/ with tokens: every review and decision with what
an analysis needs, filtered, in cursor pages that see each row once; analysts only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation.models import Adjudication, Campaign, Review
from annotation.services.assignment import claim_next_pair
from annotation.services.final_label import decide_adjudication
from annotation.services.review import ReviewDetails, give_blind_verdict, submit_review
from spavl_web.tokens import create_token
from tests.factories import (
    make_agreement_campaign,
    make_agreement_review,
    make_campaign,
    make_pair,
    subcategory,
)

pytestmark = pytest.mark.django_db
REVIEWS = "/api/v1/reviews/"
ADJUDICATIONS = "/api/v1/adjudications/"


def _api(user: User, *scopes: str) -> Client:
    _, secret = create_token(user=user, name="test", scopes=list(scopes) or ["read"])
    return Client(HTTP_AUTHORIZATION=f"Token {secret}")


def _with_perm(name: str, codename: str) -> User:
    user = User.objects.create_user(name)
    user.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def analyst(db: None) -> Client:
    return _api(_with_perm("ana", "view_agreement"))


def _review(campaign: Campaign, reviewer: User, verdict: str, **details: Any) -> None:
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer)
    assert lease is not None
    screen = lease.to_screen_side(verdict)
    give_blind_verdict(assignment=lease, verdict=screen)
    submit_review(assignment=lease, verdict=screen, details=ReviewDetails(**details))


def _walk(client: Client, url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    next_url: str | None = url
    while next_url:
        page = client.get(next_url)
        assert page.status_code == 200, page.json()
        rows += page.json()["results"]
        next_url = page.json()["next"]
    return rows


def test_a_review_comes_with_its_verdicts_side_time_correction_and_flags(
    spavl_taxonomy: None, reviewer: User, analyst: Client
) -> None:
    campaign = make_campaign(pairs=1, reviewers=[reviewer])
    harass = subcategory("harass")
    _review(
        campaign,
        reviewer,
        "b",
        taxonomy_correction=harass,
        flag_response_truncated=True,
        active_seconds=42,
        note="cut off",
    )
    [row] = analyst.get(REVIEWS).json()["results"]
    pair_id = campaign.pairs.get().pair_id
    assert (row["campaign"], row["pair"], row["reviewer"]) == (campaign.pk, pair_id, "rita")
    assert (row["blind_verdict"], row["final_verdict"]) == ("b", "b")
    assert row["left_side"] in ("a", "b") and row["active_seconds"] == 42
    assert row["taxonomy_correction"] == {"id": harass.pk, "path": harass.path}
    assert row["taxonomy_correction"]["path"].endswith(" / harass")
    assert row["flags"] == ["response truncated"] and row["note"] == "cut off"
    assert row["revealed_at"] and row["submitted_at"]


@pytest.fixture
def reviews(spavl_taxonomy: None, reviewer: User, other_reviewer: User) -> dict[str, Any]:
    """Four reviews over two campaigns: rita a, otto b (flagged) in the first; rita tie and
    an old one of otto's in the second."""
    first, second = make_agreement_campaign(name="first"), make_agreement_campaign(name="second")
    pair, other_pair = make_pair(), make_pair()
    long_ago = timezone.now() - timedelta(days=30)
    rows = [
        make_agreement_review(campaign=first, pair=pair, reviewer=reviewer, blind="a"),
        make_agreement_review(campaign=first, pair=pair, reviewer=other_reviewer, blind="b"),
        make_agreement_review(campaign=second, pair=other_pair, reviewer=reviewer, blind="tie"),
        make_agreement_review(
            campaign=second,
            pair=other_pair,
            reviewer=other_reviewer,
            blind="a",
            submitted_at=long_ago,
        ),
    ]
    rows[1].flag_other = True
    rows[1].save(update_fields=["flag_other"])
    return {"first": first, "second": second, "pair": pair, "rows": rows}


def _ids(client: Client, query: str) -> list[int]:
    answer = client.get(f"{REVIEWS}?{query}")
    assert answer.status_code == 200, answer.json()
    return [row["id"] for row in answer.json()["results"]]


def test_reviews_are_filtered_by_campaign_pair_reviewer_verdict_time_and_flags(
    reviews: dict[str, Any], analyst: Client
) -> None:
    ids = [review.pk for review in reviews["rows"]]
    week_ago = (timezone.now() - timedelta(days=7)).isoformat()
    assert _ids(analyst, "") == ids
    assert _ids(analyst, f"campaign={reviews['first'].pk}") == ids[:2]
    assert _ids(analyst, f"pair={reviews['pair'].pk}") == ids[:2]
    assert _ids(analyst, "reviewer=rita") == [ids[0], ids[2]]
    assert _ids(analyst, "reviewer=nobody") == []
    assert _ids(analyst, "verdict=a") == [ids[0], ids[3]]
    assert _ids(analyst, f"since={week_ago.replace('+', '%2B')}") == ids[:3]
    assert _ids(analyst, "flagged=true") == [ids[1]]
    assert _ids(analyst, "flagged=false") == [ids[0], ids[2], ids[3]]
    assert _ids(analyst, f"campaign={reviews['second'].pk}&reviewer=otto&verdict=a") == [ids[3]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("campaign=first", "campaign"),
        ("campaign=0", "campaign"),
        ("pair=99999999999999999999", "pair"),
        ("verdict=left", "verdict"),
        ("since=last+week", "since"),
        ("flagged=perhaps", "flagged"),
        ("page_size=501", "page_size"),
        ("page_size=0", "page_size"),
        ("page_size=ten", "page_size"),
    ],
)
def test_a_bad_filter_is_400_naming_it(analyst: Client, query: str, field: str) -> None:
    answer = analyst.get(f"{REVIEWS}?{query}")
    assert answer.status_code == 400 and field in answer.json()


def test_a_forged_cursor_is_404(analyst: Client) -> None:
    # base64 of "p=abc": a position that is no id.
    assert analyst.get(f"{REVIEWS}?cursor=cD1hYmM%3D").status_code == 404
    assert analyst.get(f"{REVIEWS}?cursor=nonsense").status_code == 404


def test_pages_see_every_review_once_while_reviews_arrive(
    reviews: dict[str, Any], analyst: Client, reviewer: User
) -> None:
    before = [review.pk for review in reviews["rows"]]
    first = analyst.get(f"{REVIEWS}?page_size=3").json()
    late = make_agreement_review(
        campaign=reviews["second"], pair=make_pair(), reviewer=reviewer, blind="b"
    )
    rest = _walk(analyst, first["next"])
    seen = [row["id"] for row in first["results"]] + [row["id"] for row in rest]
    assert seen == [*before, late.pk]


def test_a_page_takes_the_same_queries_whatever_its_size(
    spavl_taxonomy: None, reviewer: User, analyst: Client
) -> None:
    campaign = make_agreement_campaign()
    harass = subcategory("harass")
    analyst.get(REVIEWS)  # the token's first use of the minute is noted: not counted here
    counts = []
    for more in (1, 19):
        for _ in range(more):
            review = make_agreement_review(
                campaign=campaign, pair=make_pair(), reviewer=reviewer, blind="a"
            )
            review.taxonomy_correction = harass
            review.save(update_fields=["taxonomy_correction"])
        with CaptureQueriesContext(connection) as queries:
            page = analyst.get(f"{REVIEWS}?page_size=500")
        assert len(page.json()["results"]) == Review.objects.count()
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_analysts_adjudicators_and_admins_read_reviewers_and_others_get_404(
    reviews: dict[str, Any], reviewer: User, adjudicator: User, staff_admin: User
) -> None:
    exporter = _with_perm("exporter", "run_export")
    watcher = _with_perm("watcher", "view_judgerun")
    for allowed in (adjudicator, staff_admin):
        client = _api(allowed)
        assert client.get(REVIEWS).status_code == 200
        assert client.get(ADJUDICATIONS).status_code == 200
    for refused in (reviewer, exporter, watcher):
        client = _api(refused)
        assert client.get(REVIEWS).status_code == 404
        assert client.get(ADJUDICATIONS).status_code == 404
    assert Client().get(REVIEWS).status_code == 401


def test_a_token_without_the_read_scope_cannot_list(
    reviews: dict[str, Any], staff_admin: User
) -> None:
    judge_only = _api(staff_admin, "judge")
    assert judge_only.get(REVIEWS).status_code == 403
    assert judge_only.get(ADJUDICATIONS).status_code == 403


def test_adjudications_come_with_status_verdict_note_adjudicator_and_times(
    spavl_taxonomy: None, reviewer: User, other_reviewer: User, adjudicator: User, analyst: Client
) -> None:
    campaign = make_campaign(pairs=2, overlap=2, reviewers=[reviewer, other_reviewer])
    for _ in range(2):  # rita and otto disagree on both pairs
        _review(campaign, reviewer, "a")
        _review(campaign, other_reviewer, "b")
    decided, still_open = Adjudication.objects.order_by("pk")
    decide_adjudication(adjudication=decided, verdict="tie", by=adjudicator, note="both fine")
    rows = _walk(analyst, f"{ADJUDICATIONS}?page_size=1")
    assert [row["id"] for row in rows] == [decided.pk, still_open.pk]
    assert rows[0] | {"created_at": None, "decided_at": None, "reason": None} == {
        "id": decided.pk,
        "campaign": campaign.pk,
        "pair": decided.pair_id,
        "reason": None,
        "status": "decided",
        "verdict": "tie",
        "exclude": False,
        "taxonomy_correction": None,
        "note": "both fine",
        "adjudicator": "adele",
        "created_at": None,
        "decided_at": None,
    }
    assert rows[0]["decided_at"] and rows[1]["decided_at"] is None
    assert (rows[1]["status"], rows[1]["adjudicator"]) == ("open", None)

    def ids(query: str) -> list[int]:
        return [row["id"] for row in analyst.get(f"{ADJUDICATIONS}?{query}").json()["results"]]

    assert ids("status=open") == [still_open.pk]
    assert ids("verdict=tie") == [decided.pk]
    assert ids("adjudicator=adele") == [decided.pk]
    assert ids(f"campaign={campaign.pk}&pair={still_open.pair_id}") == [still_open.pk]
    assert ids(f"since={(timezone.now() + timedelta(hours=1)).isoformat()[:19]}") == []
    assert analyst.get(f"{ADJUDICATIONS}?status=closed").status_code == 400

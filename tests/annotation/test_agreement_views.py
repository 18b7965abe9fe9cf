"""The agreement page, CSV and API: access, same numbers everywhere, cache, query counts."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from annotation.models import Review
from annotation.services.agreement.dashboard import flatten_dashboard
from annotation.views.agreement import spreadsheet_safe
from tests.factories import (
    make_agreement_campaign,
    make_agreement_review,
    make_judgement,
    make_pair,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    cache.clear()


def seed(*, pairs: int, people: list[User]) -> list[Review]:
    campaign = make_agreement_campaign()
    reviews = []
    for i in range(pairs):
        pair = make_pair(subcategory_key="bully" if i % 2 else "sexism")
        make_judgement(pair=pair, p_a_better=0.9 if i % 3 else 0.2, p_unsafe_a=0.1, p_unsafe_b=0.9)
        for j, person in enumerate(people):
            verdict = "a" if (i + j) % 4 else "b"
            reviews.append(
                make_agreement_review(
                    campaign=campaign,
                    pair=pair,
                    reviewer=person,
                    blind=verdict,
                    left_side="a" if (i * j) % 2 else "b",
                    in_control=i % 5 == 0,
                )
            )
    return reviews


@pytest.fixture
def people(db: Any) -> list[User]:
    return [User.objects.create_user(f"person{i}") for i in range(2)]


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("persona", "status"), [("staff_admin", 200), ("adjudicator", 200), ("reviewer", 404)]
)
def test_it_lets_staff_and_adjudicators_in_and_hides_the_page_from_reviewers(
    request, spavl_taxonomy, persona, status
):
    client = logged_in(request.getfixturevalue(persona))
    assert client.get("/agreement/").status_code == status
    assert client.get("/agreement.csv").status_code == status
    assert client.get("/api/v1/agreement/").status_code == status


def test_it_sends_anonymous_visitors_to_log_in(db):
    assert Client().get("/agreement/").status_code == 302
    assert Client().get("/api/v1/agreement/").status_code in (401, 403)


def test_it_gives_the_same_numbers_on_the_page_in_the_csv_and_in_the_api(
    spavl_taxonomy, staff_admin, people
):
    seed(pairs=40, people=people)
    client = logged_in(staff_admin)
    page = client.get("/agreement/?target=80")
    result = page.context["result"]
    # Two reviewers disagree on every pair where i % 4 is 0 or 3: no majority there.
    assert result["judge_vs_people"]["raw"]["percent"]["n"] == 20
    assert result["counts"]["no_majority"] == 20
    api = client.get("/api/v1/agreement/?target=80").json()
    assert api["judge_vs_people"] == result["judge_vs_people"]
    assert api["people_vs_people"]["alpha"] == result["people_vs_people"]["alpha"]
    assert api["safety"]["overall"]["chosen"] == result["safety"]["overall"]["chosen"]
    rows = list(
        csv.DictReader(io.StringIO(client.get("/agreement.csv?target=80").content.decode()))
    )
    expected = flatten_dashboard(result)
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        assert got == {key: "" if value is None else str(value) for key, value in want.items()}


def test_it_recomputes_when_a_review_changes(spavl_taxonomy, staff_admin, people):
    reviews = seed(pairs=40, people=people[:1])
    client = logged_in(staff_admin)
    before = client.get("/agreement/").context["result"]["judge_vs_people"]["confusion"]
    review = reviews[0]
    review.blind_verdict = "tie"
    review.save(update_fields=["blind_verdict"])
    after = client.get("/agreement/").context["result"]["judge_vs_people"]["confusion"]
    assert after != before
    assert sum(row[2] for row in after["rows"]) == sum(row[2] for row in before["rows"]) + 1


def test_it_serves_the_second_view_from_the_cache(
    spavl_taxonomy, staff_admin, people, django_assert_max_num_queries
):
    seed(pairs=35, people=people)
    client = logged_in(staff_admin)
    client.get("/agreement/")
    with django_assert_max_num_queries(12):
        assert client.get("/agreement/").status_code == 200


@pytest.mark.parametrize("pairs", [5, 40])
def test_it_renders_the_page_in_a_constant_number_of_queries(
    spavl_taxonomy, staff_admin, people, pairs, django_assert_max_num_queries
):
    seed(pairs=pairs, people=people)
    client = logged_in(staff_admin)
    with django_assert_max_num_queries(30):
        response = client.get("/agreement/")
    assert response.status_code == 200
    assert b'role="img"' in response.content


def test_it_renders_only_the_results_for_htmx_filters(spavl_taxonomy, staff_admin, people):
    seed(pairs=3, people=people)
    response = logged_in(staff_admin).get(
        "/agreement/?question_type=easy&week=2026-W05", HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert b'id="results"' in response.content
    assert b"<form" not in response.content


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("node=x", "node"),
        ("week=nonsense", "week"),
        ("week=9999-W52", "week"),  # its Monday exists, its end does not: a 500 before
        ("week=0000-W01", "week"),
        ("target=7", "target"),
        ("campaign=99999999999999999999", "campaign"),  # beyond bigint: a 500 before
        ("reviewer=-1", "reviewer"),
        ("question_type=nonsense", "question_type"),
    ],
)
def test_every_agreement_surface_answers_400_naming_the_bad_filter(
    spavl_taxonomy, staff_admin, query, field
):
    client = logged_in(staff_admin)
    page = client.get(f"/agreement/?{query}")
    fragment = client.get(f"/agreement/?{query}", HTTP_HX_REQUEST="true")
    table = client.get(f"/agreement.csv?{query}")
    api = client.get(f"/api/v1/agreement/?{query}")
    assert (page.status_code, fragment.status_code) == (400, 200)  # htmx swaps 2xx only
    for response in (page, fragment):
        assert "These filters name no slice" in response.content.decode()
        assert f"<code>{field}</code>" in response.content.decode()
    assert table.status_code == 400 and field in table.content.decode()
    assert api.status_code == 400 and field in api.json()


def test_the_csv_cannot_carry_a_spreadsheet_formula(spavl_taxonomy, staff_admin):
    hostile = [
        User.objects.create_user("=HYPERLINK(1)"),
        User.objects.create_user("@SUM(A1)"),
        User.objects.create_user("+cmd"),
        User.objects.create_user("-2+3"),
    ]
    seed(pairs=12, people=hostile)
    rows = list(
        csv.reader(io.StringIO(logged_in(staff_admin).get("/agreement.csv").content.decode()))
    )
    groups = {row[1] for row in rows[1:]}
    assert {"'=HYPERLINK(1)", "'@SUM(A1)", "'+cmd", "'-2+3"} <= groups
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)
    # Numbers stay numbers: a negative kappa is written as it is.
    assert spreadsheet_safe(-0.25) == -0.25 and spreadsheet_safe("-0.25") == "'-0.25"


def test_it_serves_slow_figures_stale_with_their_time_while_a_task_recomputes(
    spavl_taxonomy, staff_admin, people, settings, django_capture_on_commit_callbacks
):
    from spavl_web.celery import app as celery_app

    reviews = seed(pairs=40, people=people[:1])
    client = logged_in(staff_admin)
    first = client.get("/agreement/").context["result"]
    assert first["freshness"]["stale"] is False
    review = reviews[0]
    review.blind_verdict = "tie"
    review.save(update_fields=["blind_verdict"])
    # Every computation counts as slow: the changed data is served stale, and recomputed
    # by one task however many views arrive meanwhile.
    settings.SPAVL_AGREEMENT_INLINE_S = 0
    previous, celery_app.conf.task_always_eager = celery_app.conf.task_always_eager, True
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            stale = client.get("/agreement/")
            client.get("/api/v1/agreement/")
        assert len(callbacks) == 1
    finally:
        celery_app.conf.task_always_eager = previous
    result = stale.context["result"]
    assert result["freshness"]["stale"] is True
    assert result["judge_vs_people"] == first["judge_vs_people"]
    assert b"being computed in the background" in stale.content
    assert first["freshness"]["as_of"].encode() in stale.content
    fresh = client.get("/agreement/").context["result"]
    assert fresh["freshness"]["stale"] is False
    assert fresh["judge_vs_people"]["confusion"] != first["judge_vs_people"]["confusion"]

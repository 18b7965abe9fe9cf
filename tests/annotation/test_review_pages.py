import pytest
from django.urls import reverse

from annotation.models import (
    Assignment,
    AssignmentStatus,
    FinalLabel,
    LabelChange,
    Review,
    TaxonomyNode,
)
from annotation.services.assignment import claim_next_pair
from annotation.services.review import update_reviewer_settings
from annotation.services.taxonomy import relabel_question, retire_node
from tests.factories import make_campaign, make_pair

pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script><img src=x onerror="alert(1)">\nsecond line'


@pytest.fixture
def campaign(spavl_taxonomy, reviewer):
    return make_campaign(pairs=4, reviewers=[reviewer])


@pytest.fixture
def signed_in(client, reviewer):
    client.force_login(reviewer)
    return client


def _claim(campaign, reviewer) -> Assignment:
    lease = claim_next_pair(campaign=campaign, reviewer=reviewer)
    assert lease is not None
    return lease


def test_it_reviews_a_pair_blind_then_after_the_reveal(signed_in, campaign, reviewer):
    response = signed_in.post(reverse("review:campaign_next", args=[campaign.pk]))
    lease = Assignment.objects.get(reviewer=reviewer)
    assert response.status_code == 302
    assert response["Location"] == reverse("review:assignment", args=[lease.pk])

    page = signed_in.get(response["Location"])
    assert b"Reveal the judge" in page.content

    signed_in.post(reverse("review:blind_verdict", args=[lease.pk]), {"verdict": "left"})
    page = signed_in.get(reverse("review:assignment", args=[lease.pk]))
    assert b"The judge's verdict" in page.content

    done = signed_in.post(
        reverse("review:submit", args=[lease.pk]), {"verdict": "right", "active_seconds": 12}
    )
    review = Review.objects.get()
    left_is_a = lease.left_side == "a"
    assert review.blind_verdict == ("a" if left_is_a else "b")
    assert review.final_verdict == ("b" if left_is_a else "a")
    assert review.changed_after_reveal and review.active_seconds == 12
    following = Assignment.objects.get(reviewer=reviewer, status=AssignmentStatus.LIVE)
    assert done["Location"] == reverse("review:assignment", args=[following.pk])
    pair = review.pair
    pair.refresh_from_db()
    assert pair.final_label == (FinalLabel.FLIPPED if left_is_a else FinalLabel.CONFIRMED)
    assert pair.final_label_changes.count() == 1


def test_an_htmx_submit_answers_with_the_next_pair(signed_in, campaign, reviewer):
    lease = _claim(campaign, reviewer)
    signed_in.post(reverse("review:blind_verdict", args=[lease.pk]), {"verdict": "tie"})
    response = signed_in.post(
        reverse("review:submit", args=[lease.pk]), {"verdict": "tie"}, HTTP_HX_REQUEST="true"
    )
    following = Assignment.objects.get(reviewer=reviewer, status=AssignmentStatus.LIVE)
    assert response.status_code == 200
    assert response["HX-Push-Url"] == reverse("review:assignment", args=[following.pk])
    assert b'id="review"' in response.content and b"<html" not in response.content


def test_a_taxonomy_correction_relabels_the_question_with_history(signed_in, campaign, reviewer):
    lease = _claim(campaign, reviewer)
    target = TaxonomyNode.objects.active().subcategories().get(key="harass")
    data = {"verdict": "left", "taxonomy_correction": target.pk}
    signed_in.post(reverse("review:blind_verdict", args=[lease.pk]), data)
    signed_in.post(reverse("review:submit", args=[lease.pk]), data)
    question = lease.campaign_pair.pair.question
    question.refresh_from_db()
    assert question.subcategory == target
    change = LabelChange.objects.get(question=question)
    assert change.old_subcategory.key == "bully" and change.changed_by == reviewer


def test_undo_reopens_the_last_review_at_the_confirm_step(signed_in, campaign, reviewer):
    lease = _claim(campaign, reviewer)
    signed_in.post(reverse("review:blind_verdict", args=[lease.pk]), {"verdict": "left"})
    signed_in.post(reverse("review:submit", args=[lease.pk]), {"verdict": "left"})
    signed_in.post(reverse("review:undo", args=[lease.pk]))
    review = Review.objects.get()
    assert review.submitted_at is None and review.final_verdict == ""
    lease.refresh_from_db()
    assert lease.status == AssignmentStatus.LIVE
    pair = review.pair
    pair.refresh_from_db()
    assert pair.final_label == FinalLabel.IMPORTED  # back to the base label: see final_label
    labels = [change.new_label for change in pair.final_label_changes.order_by("pk")]
    assert labels in (["confirmed", "imported"], ["flipped", "imported"])


def test_undo_reverts_the_taxonomy_correction_keeping_history(signed_in, campaign, reviewer):
    lease = _claim(campaign, reviewer)
    target = TaxonomyNode.objects.active().subcategories().get(key="harass")
    data = {"verdict": "left", "taxonomy_correction": target.pk}
    signed_in.post(reverse("review:blind_verdict", args=[lease.pk]), data)
    signed_in.post(reverse("review:submit", args=[lease.pk]), data)
    signed_in.post(reverse("review:undo", args=[lease.pk]))
    question = lease.campaign_pair.pair.question
    question.refresh_from_db()
    assert question.subcategory.key == "bully"
    history = [
        (change.old_subcategory.key, change.new_subcategory.key, change.reason)
        for change in LabelChange.objects.filter(question=question).order_by("pk")
    ]
    assert [(old, new) for old, new, _ in history] == [("bully", "harass"), ("harass", "bully")]
    assert history[1][2] == "review correction undone"


def test_undo_leaves_a_later_relabel_alone(signed_in, campaign, reviewer, staff_admin):
    lease = _claim(campaign, reviewer)
    nodes = TaxonomyNode.objects.active().subcategories()
    data = {"verdict": "left", "taxonomy_correction": nodes.get(key="harass").pk}
    signed_in.post(reverse("review:blind_verdict", args=[lease.pk]), data)
    signed_in.post(reverse("review:submit", args=[lease.pk]), data)
    question = lease.campaign_pair.pair.question
    other = nodes.exclude(key__in=["harass", "bully"]).first()
    relabel_question(question=question, subcategory=other, reason="admin fix", by=staff_admin)
    signed_in.post(reverse("review:undo", args=[lease.pk]))
    question.refresh_from_db()
    assert question.subcategory == other
    assert LabelChange.objects.filter(question=question).count() == 2


def test_a_flag_other_needs_a_note(signed_in, campaign, reviewer):
    lease = _claim(campaign, reviewer)
    response = signed_in.post(
        reverse("review:blind_verdict", args=[lease.pk]),
        {"verdict": "left", "flag_other": "on"},
    )
    assert response.status_code == 422
    assert not Review.objects.exists()


def test_model_text_is_shown_as_inert_text(signed_in, spavl_taxonomy, reviewer):
    make_pair(chosen=XSS, rejected="fine")
    campaign = make_campaign(pairs=0, reviewers=[reviewer])
    lease = _claim(campaign, reviewer)
    page = signed_in.get(reverse("review:assignment", args=[lease.pk]))
    html = page.content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=" in html
    assert "\nsecond line" in html  # line breaks kept for white-space: pre-wrap


def test_the_review_page_takes_a_constant_number_of_queries(
    signed_in, spavl_taxonomy, reviewer, django_assert_max_num_queries
):
    campaign = make_campaign(pairs=25, reviewers=[reviewer])
    lease = _claim(campaign, reviewer)
    url = reverse("review:assignment", args=[lease.pk])
    signed_in.get(url)  # the first render caches the subcategory list of this taxonomy version
    with django_assert_max_num_queries(5):
        assert signed_in.get(url).status_code == 200
    signed_in.post(reverse("review:blind_verdict", args=[lease.pk]), {"verdict": "left"})
    with django_assert_max_num_queries(6):
        assert signed_in.get(url).status_code == 200


def test_next_and_submit_take_a_constant_number_of_queries(
    signed_in, spavl_taxonomy, reviewer, django_assert_max_num_queries
):
    campaign = make_campaign(pairs=25, reviewers=[reviewer])
    # Claims on PostgreSQL add the stale-lease sweep to their statement at most every 5 s.
    with django_assert_max_num_queries(6):
        signed_in.post(reverse("review:campaign_next", args=[campaign.pk]))
    lease = Assignment.objects.get()
    signed_in.get(reverse("review:assignment", args=[lease.pk]))  # caches the subcategories
    # 9: the stored-review check runs after the row lock, in its own statement (see
    # give_blind_verdict), so concurrent identical verdicts cannot both insert.
    with django_assert_max_num_queries(9):
        signed_in.post(
            reverse("review:blind_verdict", args=[lease.pk]),
            {"verdict": "left"},
            HTTP_HX_REQUEST="true",
        )
    with django_assert_max_num_queries(18):
        response = signed_in.post(
            reverse("review:submit", args=[lease.pk]),
            {"verdict": "left"},
            HTTP_HX_REQUEST="true",
        )
    assert response.status_code == 200


def test_the_home_page_shows_counts_and_campaigns(
    signed_in, campaign, django_assert_max_num_queries
):
    with django_assert_max_num_queries(7):
        page = signed_in.get(reverse("review:home"))
    assert campaign.name in page.content.decode()
    assert b"Reviewed today" in page.content


def test_the_correction_menu_follows_taxonomy_changes(signed_in, campaign, reviewer):
    lease = _claim(campaign, reviewer)
    url = reverse("review:assignment", args=[lease.pk])
    node = TaxonomyNode.objects.active().subcategories().get(key="harass")
    option = f'<option value="{node.pk}"'.encode()
    assert option in signed_in.get(url).content
    retire_node(node=node)
    assert option not in signed_in.get(url).content


def test_the_review_page_follows_the_blur_setting(signed_in, campaign, reviewer):
    lease = _claim(campaign, reviewer)
    url = reverse("review:assignment", args=[lease.pk])
    assert b"it stays blurred until you reveal it" in signed_in.get(url).content
    update_reviewer_settings(reviewer=reviewer, blur_images=False)
    assert b"it stays blurred until you reveal it" not in signed_in.get(url).content


@pytest.mark.parametrize(
    "next_url",
    ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"],
)
def test_saving_settings_never_redirects_off_site(signed_in, next_url):
    response = signed_in.post(reverse("review:settings"), {"next_url": next_url})
    assert response.status_code == 302
    assert response["Location"] == reverse("review:home")


def test_saving_settings_returns_to_the_page_it_came_from(signed_in):
    response = signed_in.post(reverse("review:settings"), {"next_url": "/adjudication/?page=2"})
    assert response["Location"] == "/adjudication/?page=2"

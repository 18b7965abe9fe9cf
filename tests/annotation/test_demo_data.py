"""The demo dataset: deterministic, imports cleanly, covers every domain; and the simulated
reviewers' campaign made from it through the review services."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from annotation.demo.files import write_demo_dataset
from annotation.demo.reviews import SimulatedCampaign, seed_simulated_campaign
from annotation.models import (
    Adjudication,
    Campaign,
    FinalLabel,
    Pair,
    PairOrigin,
    Question,
    Response,
    Review,
    TaxonomyLevel,
    TaxonomyNode,
)
from annotation.services.imports import import_file
from annotation.services.pairs import make_pairs
from tests.factories import (
    make_agreement_campaign,
    make_agreement_review,
    make_judgement,
    make_pair,
)


def test_it_writes_the_same_dataset_for_the_same_seed(tmp_path: Path) -> None:
    first = write_demo_dataset(out=tmp_path / "a", questions=8, seed=3)
    second = write_demo_dataset(out=tmp_path / "b", questions=8, seed=3)
    other = write_demo_dataset(out=tmp_path / "c", questions=8, seed=4)

    assert first.responses_jsonl.read_bytes() == second.responses_jsonl.read_bytes()
    images = sorted(p.name for p in (tmp_path / "a" / "images").iterdir())
    assert all(
        (tmp_path / "a" / "images" / n).read_bytes() == (tmp_path / "b" / "images" / n).read_bytes()
        for n in images
    )
    assert first.responses_jsonl.read_bytes() != other.responses_jsonl.read_bytes()


@pytest.mark.usefixtures("spavl_taxonomy")
def test_it_imports_cleanly_and_covers_every_domain(tmp_path: Path) -> None:
    out = StringIO()
    call_command("make_demo_data", "--out", str(tmp_path), "--seed", "1", stdout=out)

    responses = import_file(path=tmp_path / "responses.jsonl", import_format="responses-jsonl")
    train = import_file(path=tmp_path / "spavl_train.parquet", import_format="spavl-parquet")
    sampled = make_pairs(seed=1)

    assert "60 questions" in out.getvalue()
    assert (responses.rows_rejected, train.rows_rejected) == (0, 0)
    assert Question.objects.count() == 72
    domains = set(
        Question.objects.values_list("subcategory__parent__parent__key", flat=True).distinct()
    )
    assert domains == set(
        TaxonomyNode.objects.filter(level=TaxonomyLevel.DOMAIN).values_list("key", flat=True)
    )
    assert len(set(Response.objects.values_list("model_name", flat=True))) >= 4
    assert set(Question.objects.values_list("question_type", flat=True)) >= {
        "easy",
        "hardq",
        "hards",
    }
    assert Response.objects.filter(text__contains="<script>alert(1)</script>").exists()
    assert Pair.objects.filter(origin=PairOrigin.IMPORTED).count() == 12
    assert sampled.created == 60


def judged_demo_pairs(*, out: Path, questions: int) -> list[Pair]:
    """A small demo dataset, imported and paired, every pair judged (the judge prefers A on
    two pairs in three)."""
    dataset = write_demo_dataset(out=out, questions=questions, seed=0)
    import_file(path=dataset.responses_jsonl, import_format="responses-jsonl")
    import_file(path=dataset.train_parquet, import_format="spavl-parquet")
    make_pairs(seed=0)
    pairs = list(Pair.objects.order_by("pk"))
    for pair in pairs:
        make_judgement(pair=pair, p_a_better=0.85 if pair.pk % 3 else 0.2)
    return pairs


def simulate(*, admin: User, adjudicator: User) -> SimulatedCampaign:
    return seed_simulated_campaign(created_by=admin, adjudicator=adjudicator, judge_run=None)


@pytest.mark.usefixtures("spavl_taxonomy")
def test_it_reviews_every_pair_three_times_through_the_services_and_only_once(
    tmp_path, staff_admin, adjudicator
):
    pairs = judged_demo_pairs(out=tmp_path, questions=20)

    first = simulate(admin=staff_admin, adjudicator=adjudicator)
    counts = [model.objects.count() for model in (Campaign, Review, Adjudication, User)]
    second = simulate(admin=staff_admin, adjudicator=adjudicator)

    assert first.created and not second.created and second.campaign == first.campaign
    assert [model.objects.count() for model in (Campaign, Review, Adjudication, User)] == counts
    assert first.reviews == second.reviews == 3 * len(pairs)  # the gold pair's three included
    reviewers = User.objects.filter(reviews__campaign=first.campaign).distinct()
    assert sorted(reviewers.values_list("username", flat=True)) == [
        "simulated-1",
        "simulated-2",
        "simulated-3",
    ]
    assert not any(user.has_usable_password() for user in reviewers)
    reviews = Review.objects.filter(campaign=first.campaign)
    assert not reviews.filter(submitted_at__isnull=True).exists()
    assert reviews.filter(changed_after_reveal=True).exists()  # some revise after the reveal
    assert first.gold is not None and reviews.filter(is_gold=True).count() == 3


@pytest.mark.usefixtures("spavl_taxonomy")
def test_it_leaves_some_disagreements_waiting_and_decides_others_as_the_adjudicator(
    tmp_path, staff_admin, adjudicator
):
    judged_demo_pairs(out=tmp_path, questions=20)

    simulated = simulate(admin=staff_admin, adjudicator=adjudicator)

    adjudications = Adjudication.objects.filter(campaign_pair__campaign=simulated.campaign)
    assert simulated.waiting == adjudications.open().count() > 0
    decided = adjudications.filter(status="decided")
    assert simulated.decided == decided.count() > 0
    assert set(decided.values_list("decided_by", flat=True)) == {adjudicator.pk}
    people = {FinalLabel.CONFIRMED, FinalLabel.FLIPPED, FinalLabel.ADJUDICATED}
    assert Pair.objects.filter(final_label__in=people).count() > simulated.decided
    client = Client()
    client.force_login(adjudicator)
    queue = client.get("/adjudication/").content.decode()
    assert queue.count(simulated.campaign.name) == simulated.waiting


@pytest.mark.usefixtures("spavl_taxonomy")
def test_the_agreement_page_says_when_figures_include_simulated_reviewers(
    tmp_path, staff_admin, adjudicator
):
    judged_demo_pairs(out=tmp_path, questions=20)
    simulated = simulate(admin=staff_admin, adjudicator=adjudicator)
    client = Client()
    client.force_login(staff_admin)

    page = client.get("/agreement/").content.decode()
    of_one_campaign = client.get(f"/agreement/?campaign={simulated.campaign.pk}")

    figures = simulated.reviews - 3  # the gold pair's reviews count for gold accuracy only
    note = (
        f"Includes {figures} reviews by simulated demo reviewers "
        "(simulated-1, simulated-2, simulated-3)"
    )
    assert note in page
    assert note in of_one_campaign.content.decode()


@pytest.mark.usefixtures("spavl_taxonomy")
def test_the_agreement_page_has_no_simulated_note_for_people_only(staff_admin, reviewer):
    campaign = make_agreement_campaign()
    for _ in range(3):
        pair = make_pair()
        make_judgement(pair=pair)
        make_agreement_review(campaign=campaign, pair=pair, reviewer=reviewer, blind="a")
    client = Client()
    client.force_login(staff_admin)

    page = client.get("/agreement/").content.decode()

    assert "rita" in page
    assert "simulated demo reviewers" not in page

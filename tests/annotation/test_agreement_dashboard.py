"""The dashboard's numbers on seeded PostgreSQL data, against answers worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from sklearn.metrics import cohen_kappa_score

from annotation.services.agreement.dashboard import agreement_summary_for_export, build_dashboard
from annotation.services.agreement.queries import AgreementSlice
from annotation.services.agreement.stats import MIN_SLICE_N
from tests.factories import (
    make_agreement_campaign,
    make_agreement_review,
    make_judgement,
    make_pair,
    make_pool_pair,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(db: Any) -> list[User]:
    return [User.objects.create_user(f"person{i}") for i in range(3)]


def judged_and_reviewed(
    *,
    campaign: Any,
    verdicts: list[str],
    p: float,
    people: list[User],
    key: str = "bully",
    **kw: Any,
) -> Any:
    pair = make_pair(subcategory_key=key)
    make_judgement(pair=pair, p_a_better=p)
    for person, verdict in zip(people, verdicts, strict=False):
        make_agreement_review(campaign=campaign, pair=pair, reviewer=person, blind=verdict, **kw)
    return pair


def test_it_gives_perfect_agreement_when_everybody_agrees(spavl_taxonomy, people):
    campaign = make_agreement_campaign()
    for i in range(MIN_SLICE_N):
        side, p = ("a", 0.9) if i % 3 else ("b", 0.2)
        judged_and_reviewed(campaign=campaign, verdicts=[side, side], p=p, people=people)
    result = build_dashboard(slice_=AgreementSlice())
    raw = result["judge_vs_people"]["raw"]
    assert raw["percent"]["estimate"] == 1.0
    assert raw["kappa"]["estimate"] == pytest.approx(1.0)
    assert raw["ac1"]["estimate"] == pytest.approx(1.0)
    assert raw["percent"]["n"] == MIN_SLICE_N
    assert result["people_vs_people"]["alpha"]["estimate"] == pytest.approx(1.0)
    assert result["people_vs_people"]["fleiss"]["estimate"] == pytest.approx(1.0)


def test_it_matches_sklearn_on_a_mixed_slice_and_counts_what_it_leaves_out(spavl_taxonomy, people):
    campaign = make_agreement_campaign()
    judge, human = [], []
    plan = [("a", 0.9, ["a"]), ("a", 0.8, ["b", "b"]), ("b", 0.3, ["b"]), ("a", 0.7, ["tie"])]
    for i in range(40):
        expected_judge, p, verdicts = plan[i % 4]
        judged_and_reviewed(campaign=campaign, verdicts=verdicts, p=p, people=people)
        judge.append(expected_judge)
        human.append(verdicts[0])
    # Left out and counted: a reviewer tie (no majority) and an all-cannot-judge pair.
    judged_and_reviewed(campaign=campaign, verdicts=["a", "b"], p=0.9, people=people)
    judged_and_reviewed(campaign=campaign, verdicts=["cannot_judge"], p=0.9, people=people)
    result = build_dashboard(slice_=AgreementSlice())
    raw = result["judge_vs_people"]["raw"]
    assert raw["percent"]["estimate"] == pytest.approx(20 / 40)
    assert raw["kappa"]["estimate"] == pytest.approx(cohen_kappa_score(judge, human))
    assert result["counts"] == {
        "pairs": 42,
        "judged": 42,
        "reviewed": 42,
        "with_human_verdict": 40,
        "compared": 40,
        "reviewed_not_judged": 0,
        "cannot_judge": 1,
        "no_majority": 1,
    }
    # judge rows x people columns, verdict order a, b, tie, both_unsafe
    assert result["judge_vs_people"]["confusion"]["rows"][0] == [10, 10, 10, 0]


def test_it_withholds_a_small_slice_but_shows_its_n(spavl_taxonomy, people):
    campaign = make_agreement_campaign()
    judged_and_reviewed(campaign=campaign, verdicts=["a"], p=0.9, people=people)
    result = build_dashboard(slice_=AgreementSlice())
    percent = result["judge_vs_people"]["raw"]["percent"]
    assert percent["estimate"] is None
    assert percent["n"] == 1
    assert percent["withheld"] == "too few for a reliable figure"
    assert result["people_vs_people"]["alpha"]["n"] == 0


def test_it_takes_the_adjudicated_verdict_over_the_majority(spavl_taxonomy, people):
    from annotation.models import Adjudication

    campaign = make_agreement_campaign()
    pair = judged_and_reviewed(campaign=campaign, verdicts=["a", "b"], p=0.9, people=people)
    Adjudication.objects.create(
        campaign_pair=make_pool_pair(campaign=campaign, pair=pair),
        pair=pair,
        reason="disagree",
        status="decided",
        verdict="b",
    )
    result = build_dashboard(slice_=AgreementSlice())
    assert result["counts"]["no_majority"] == 0
    assert result["judge_vs_people"]["confusion"]["rows"][0][1] == 1


def test_it_weights_routed_reviews_by_the_inverse_review_probability(spavl_taxonomy, people):
    campaign = make_agreement_campaign()
    # Flagged stratum: 40 pool pairs, all reviewed, judge agrees on half.
    for i in range(40):
        verdict = "a" if i % 2 else "b"
        judged_and_reviewed(
            campaign=campaign, verdicts=[verdict], p=0.9, people=people, flagged=True
        )
    # Unflagged stratum: 400 pool pairs, 40 reviewed, the judge always agrees.
    for i in range(400):
        if i < 40:
            judged_and_reviewed(campaign=campaign, verdicts=["a"], p=0.9, people=people)
        else:
            pair = make_pair()
            make_judgement(pair=pair, p_a_better=0.9)
            make_pool_pair(campaign=campaign, pair=pair)
    result = build_dashboard(slice_=AgreementSlice())
    figures = result["judge_vs_people"]
    assert figures["raw"]["percent"]["estimate"] == pytest.approx(60 / 80)
    # weights 1 (flagged) and 10 (unflagged): (20 * 1 + 40 * 10) / (40 * 1 + 40 * 10)
    assert figures["weighted"]["percent"]["estimate"] == pytest.approx(420 / 440)
    assert figures["control"]["percent"]["n"] == 0


def test_a_pair_reviewed_in_two_campaigns_counts_as_reviewed_in_both(spavl_taxonomy, people):
    first, second = make_agreement_campaign(), make_agreement_campaign(name="second")
    n = MIN_SLICE_N
    # First campaign: 2n pool pairs, n reviewed (weight 2), the judge agrees on all of them.
    shared, *_ = [
        judged_and_reviewed(campaign=first, verdicts=["a"], p=0.9, people=people) for _ in range(n)
    ]
    for _ in range(n):
        pair = make_pair()
        make_judgement(pair=pair, p_a_better=0.9)
        make_pool_pair(campaign=first, pair=pair)
    # Second campaign: 2 pool pairs, both reviewed (weight 1): one of the first campaign's
    # again, and one where the judge disagrees.
    make_agreement_review(campaign=second, pair=shared, reviewer=people[1], blind="a")
    judged_and_reviewed(campaign=second, verdicts=["b"], p=0.9, people=people)
    figures = build_dashboard(slice_=AgreementSlice())["judge_vs_people"]
    assert figures["raw"]["percent"]["estimate"] == pytest.approx(n / (n + 1))
    # The shared pair takes its first campaign's weight, 2. Counted as reviewed in the first
    # campaign only, the second's weight would be 2 / 1 and the weighted figure 2n / (2n + 2).
    assert figures["weighted"]["percent"]["estimate"] == pytest.approx(2 * n / (2 * n + 1))


def test_it_scores_the_control_slice_alone(spavl_taxonomy, people):
    campaign = make_agreement_campaign()
    for i in range(30):
        judged_and_reviewed(
            campaign=campaign,
            verdicts=["a" if i % 3 else "b"],
            p=0.9,
            people=people,
            in_control=True,
        )
    for _ in range(10):
        judged_and_reviewed(campaign=campaign, verdicts=["b"], p=0.9, people=people)
    control = build_dashboard(slice_=AgreementSlice())["judge_vs_people"]["control"]
    assert control["percent"]["estimate"] == pytest.approx(20 / 30)
    assert control["percent"]["n"] == 30


def test_it_measures_position_bias_of_the_judge_and_the_reviewers(spavl_taxonomy, people):
    campaign = make_agreement_campaign()
    for i in range(40):
        pair = make_pair()
        # One-order readings disagree on every fourth pair.
        make_judgement(
            pair=pair, p_a_better=0.7, p_a_first=0.8, p_a_second=0.4 if i % 4 == 0 else 0.6
        )
        make_agreement_review(
            campaign=campaign,
            pair=pair,
            reviewer=people[0],
            blind="a",
            left_side="a" if i < 30 else "b",
        )
    result = build_dashboard(slice_=AgreementSlice())
    flip = result["position_bias"]["judge_flip"]
    assert flip["estimate"] == pytest.approx(10 / 40)
    (reviewer,) = result["people_vs_people"]["reviewers"]
    assert reviewer["left_side"]["estimate"] == pytest.approx(30 / 40)
    assert reviewer["left_side"]["p_value"] < 0.01
    assert reviewer["agreement_with_judge"]["estimate"] == 1.0


def test_it_counts_anchoring_toward_and_away_from_the_judge(spavl_taxonomy, people):
    campaign = make_agreement_campaign()
    cases = [("b", "a"), ("b", "a"), ("a", "b"), ("a", "a"), ("tie", "both_unsafe")]
    for blind, final in cases:
        pair = make_pair()
        make_judgement(pair=pair, p_a_better=0.9)
        make_agreement_review(
            campaign=campaign, pair=pair, reviewer=people[0], blind=blind, final=final
        )
    anchoring = build_dashboard(slice_=AgreementSlice())["anchoring"]
    assert (anchoring["toward_judge"], anchoring["away_from_judge"], anchoring["other_change"]) == (
        2,
        1,
        1,
    )
    assert anchoring["changed"]["n"] == 5
    assert anchoring["reviews"] == 5


def test_it_scores_gold_accuracy_and_keeps_gold_out_of_agreement(spavl_taxonomy, people):
    campaign = make_agreement_campaign()
    for i in range(MIN_SLICE_N):
        pair = make_pair()
        make_agreement_review(
            campaign=campaign,
            pair=pair,
            reviewer=people[0],
            blind="a",
            gold_verdict="a" if i % 3 else "b",
        )
    result = build_dashboard(slice_=AgreementSlice())
    (reviewer,) = result["people_vs_people"]["reviewers"]
    assert (reviewer["gold_accuracy"]["n"], reviewer["gold_accuracy"]["estimate"]) == (30, 20 / 30)
    assert result["counts"]["reviewed"] == 0


def test_it_slices_by_category_and_by_campaign(spavl_taxonomy, people):
    first, second = make_agreement_campaign(), make_agreement_campaign(name="second")
    for _ in range(30):
        judged_and_reviewed(campaign=first, verdicts=["a"], p=0.9, people=people, key="bully")
    for _ in range(5):
        judged_and_reviewed(campaign=second, verdicts=["b"], p=0.9, people=people, key="sexism")
    from annotation.models import TaxonomyNode

    toxic = TaxonomyNode.objects.get(key="Toxic", level=2)
    by_node = build_dashboard(slice_=AgreementSlice(taxonomy_node_id=toxic.pk))
    assert by_node["judge_vs_people"]["raw"]["percent"]["estimate"] == 1.0
    by_campaign = build_dashboard(slice_=AgreementSlice(campaign_id=second.pk))
    assert by_campaign["counts"]["pairs"] == 5
    categories = build_dashboard(slice_=AgreementSlice())["judge_vs_people"]["by_category"]
    assert [(c["category"], c["percent"]["n"]) for c in categories] == [
        ("Toxic", 30),
        ("Unfair", 5),
    ]


def test_it_finds_calibration_and_safety_rates(spavl_taxonomy, people):
    campaign = make_agreement_campaign()
    for i in range(40):
        pair = make_pair()
        make_judgement(
            pair=pair,
            p_a_better=0.95 if i < 20 else 0.6,
            p_unsafe_a=0.1,
            p_unsafe_b=0.9 if i % 2 else 0.1,
        )
        make_agreement_review(
            campaign=campaign, pair=pair, reviewer=people[0], blind="a" if i < 20 or i % 2 else "b"
        )
    result = build_dashboard(slice_=AgreementSlice(), target=0.95)
    calibration = result["calibration"]
    assert calibration["threshold"]["threshold"] == pytest.approx(0.95)
    assert calibration["threshold"]["n"] == 20
    assert calibration["ece"]["n"] == 40
    safety = result["safety"]["overall"]
    assert (safety["chosen"]["estimate"], safety["rejected"]["estimate"]) == (0.0, 0.5)


def test_it_summarises_exported_pairs_for_the_dataset_card(spavl_taxonomy, people):
    campaign = make_agreement_campaign()
    pairs = [
        judged_and_reviewed(campaign=campaign, verdicts=["a", "a"], p=0.9, people=people)
        for _ in range(31)
    ]
    summary = agreement_summary_for_export(pair_ids_or_queryset=[p.pk for p in pairs[:30]])
    assert summary is not None
    assert summary["counts"]["with_human_verdict"] == 30
    assert summary["judge_vs_people"]["raw"]["percent"]["estimate"] == 1.0
    assert agreement_summary_for_export(pair_ids_or_queryset=[]) is None


def test_a_reviewers_slice_keeps_the_other_reviews_of_their_pairs_and_a_week_its_own(
    spavl_taxonomy, people
):
    from datetime import UTC, date, datetime

    campaign = make_agreement_campaign()
    first, second, third = people
    january, february = datetime(2026, 1, 6, tzinfo=UTC), datetime(2026, 2, 3, tzinfo=UTC)
    # Pair one: the first and second reviewer agree (January); pair two: the second and the
    # third disagree (February); pair three: the third alone (February).
    shared, disputed, alone = make_pair(), make_pair(), make_pair()
    for pair in (shared, disputed, alone):
        make_judgement(pair=pair, p_a_better=0.9)
    for person, pair, verdict, when in (
        (first, shared, "a", january),
        (second, shared, "a", january),
        (second, disputed, "a", february),
        (third, disputed, "b", february),
        (third, alone, "a", february),
    ):
        make_agreement_review(
            campaign=campaign, pair=pair, reviewer=person, blind=verdict, submitted_at=when
        )

    def reviewers(result: dict[str, Any]) -> dict[str, int]:
        return {row["reviewer"]: row["reviews"] for row in result["people_vs_people"]["reviewers"]}

    mine = build_dashboard(slice_=AgreementSlice(reviewer_id=first.pk))
    assert mine["counts"]["reviewed"] == 1
    assert mine["counts"]["with_human_verdict"] == 1
    assert reviewers(mine) == {"person0": 1, "person1": 1}  # the other review of their pair
    theirs = build_dashboard(slice_=AgreementSlice(reviewer_id=second.pk))
    assert theirs["counts"]["reviewed"] == 2
    assert theirs["counts"]["no_majority"] == 1
    assert reviewers(theirs) == {"person0": 1, "person1": 2, "person2": 1}
    week = build_dashboard(slice_=AgreementSlice(week=date(2026, 2, 2)))
    assert week["counts"]["reviewed"] == 2
    assert week["counts"]["judged"] == 2  # pairs of the week only, though all are judged
    assert reviewers(week) == {"person1": 1, "person2": 2}

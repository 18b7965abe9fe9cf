"""The dashboard's two-axis and per-response safety figures on seeded PostgreSQL data: a
hand-worked example (exact counts, agreement, kappa, precision, recall, ECE), and the severity
figures against scikit-learn's weighted kappa and the krippendorff package's ordinal alpha."""

from __future__ import annotations

import csv
import io
from typing import Any

import krippendorff
import numpy as np
import pytest
from django.contrib.auth.models import User
from django.db import connection
from sklearn.metrics import cohen_kappa_score

from annotation.models import Pair, ResponseSafetyLabel, Review, TaxonomyNode
from annotation.services.agreement.cache import data_version
from annotation.services.agreement.dashboard import build_dashboard, flatten_dashboard
from annotation.services.agreement.queries import SEVERITY_LEVELS, AgreementSlice
from tests.factories import (
    make_agreement_campaign,
    make_agreement_review,
    make_judgement,
    make_pair,
)

pytestmark = pytest.mark.django_db

PAIRS = 33  # 0-31 in one category; 32, answered cannot-judge by both, in another
# Blind answers on the safer axis of the two reviewers of each pair (hand-worked below).
SAFER = [("a", "a")] * 18 + [("b", "b")] * 12 + [("tie", "tie"), ("a", "b")]
SAFER.append(("cannot_judge", "cannot_judge"))
RNG_SEVERITY = np.random.default_rng(20240612)


@pytest.fixture
def people(db: Any) -> list[User]:
    return [User.objects.create_user(f"person{i}") for i in range(3)]


def _label(review: Review, *, side: str, level: int, stage: str = "blind") -> None:
    severity = SEVERITY_LEVELS[level] if level else ""
    ResponseSafetyLabel.objects.create(
        review=review, side=side, stage=stage, safe=level == 0, severity=severity
    )


def _axis_review(campaign: Any, pair: Pair, person: User, *, safer: str, helpful: str = "") -> Any:
    review = make_agreement_review(campaign=campaign, pair=pair, reviewer=person, blind="a")
    Review.objects.filter(pk=review.pk).update(
        blind_safer=safer, final_safer=safer, blind_helpful=helpful, final_helpful=helpful
    )
    return review


def _seed(people: list[User]) -> dict[str, Any]:
    """33 judged pairs, each reviewed on the safer axis by two people with per-response safety
    labels, and final per-response labels on every pair. The judge scores A safer on pairs
    0-19 (P(unsafe) 0.1 against 0.9) and B on 20-32 (0.8 against 0.2)."""
    campaign = make_agreement_campaign()
    levels: list[list[int]] = []  # per unit (pair, side): the levels in review order
    for i in range(PAIRS):
        pair = make_pair(subcategory_key="bully" if i < 32 else "ageism")
        a_safer = i < 20
        make_judgement(
            pair=pair,
            p_a_better=0.7 if a_safer else 0.3,
            p_unsafe_a=0.1 if a_safer else 0.8,
            p_unsafe_b=0.9 if a_safer else 0.2,
        )
        # Final labels: B unsafe on 0-19 but safe on 0-1 (two false alarms); A unsafe on
        # 20-32, and B too on 20 (one miss).
        Pair.objects.filter(pk=pair.pk).update(
            final_a_safe=a_safer,
            final_b_safe=not a_safer and i != 20 or i < 2,
            final_a_severity="" if a_safer else "moderate",
            final_b_severity="minor" if (2 <= i < 20 or i == 20) else "",
        )
        helpful = "a" if i < 5 else ""
        reviews = [
            _axis_review(campaign, pair, person, safer=answer, helpful=helpful)
            for person, answer in zip(people, SAFER[i], strict=False)
        ]
        if i < 4:  # a third review, of safety only, on four pairs' response A
            reviews.append(
                make_agreement_review(campaign=campaign, pair=pair, reviewer=people[2], blind="a")
            )
        for side in "ab":
            drawn = RNG_SEVERITY.integers(0, 4, size=len(reviews) if side == "a" else 2)
            for review, level in zip(reviews, drawn, strict=False):
                _label(review, side=side, level=int(level))
                _label(review, side=side, level=3, stage="final")  # the final stage is not read
            levels.append([int(level) for level in drawn])
    return {"levels": levels}


def test_it_gives_the_hand_worked_figures_of_the_safer_axis(spavl_taxonomy, people):
    _seed(people)
    axes = build_dashboard(slice_=AgreementSlice())["axes"]
    safer = axes["safer"]
    assert safer["counts"] == {
        "pairs": 33,
        "with_human_verdict": 31,
        "compared": 31,
        "cannot_judge": 1,
        "no_majority": 1,
    }
    # Judge a: people a 18, b 2; judge b: people b 10, tie 1.
    assert safer["confusion"] == {
        "verdicts": ["a", "b", "tie"],
        "rows": [[18, 2, 0], [0, 10, 1], [0, 0, 0]],
    }
    judge = safer["judge_vs_people"]
    assert judge["percent"]["estimate"] == pytest.approx(28 / 31)
    assert judge["percent"]["n"] == 31
    # Chance: (20 * 18 + 11 * 12) / 31^2 = 492 / 961, so kappa = (868 - 492) / (961 - 492).
    assert judge["kappa"]["estimate"] == pytest.approx(376 / 469)
    judge_says = ["a"] * 18 + ["a"] * 2 + ["b"] * 10 + ["b"]
    people_say = ["a"] * 18 + ["b"] * 2 + ["b"] * 10 + ["tie"]
    assert judge["kappa"]["estimate"] == pytest.approx(cohen_kappa_score(judge_says, people_say))
    assert judge["kappa"]["low"] < judge["kappa"]["estimate"] < judge["kappa"]["high"]
    # People against people: the 32 pairs with two answers other than cannot-judge.
    codes = {"a": 0, "b": 1, "tie": 2, "cannot_judge": np.nan}
    data = np.array([[codes[answer] for answer in answers] for answers in SAFER]).T
    assert safer["alpha"]["n"] == 32
    assert safer["alpha"]["estimate"] == pytest.approx(
        krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    )


def test_it_shows_the_n_and_no_figure_of_slices_below_the_minimum(spavl_taxonomy, people):
    _seed(people)
    axes = build_dashboard(slice_=AgreementSlice())["axes"]
    helpful = axes["helpful"]  # five pairs answered "a" by both, the judge prefers A
    assert helpful["counts"]["compared"] == 5
    assert helpful["judge_vs_people"]["percent"] == {
        "estimate": None,
        "n": 5,
        "low": None,
        "high": None,
        "withheld": "too few for a reliable figure",
    }
    small = {row["category"]: row for row in axes["safer"]["by_category"]}
    unfair = TaxonomyNode.objects.get(key="ageism").parent.key
    assert small[unfair]["judge_vs_people"]["percent"]["n"] == 0
    assert small[unfair]["alpha"]["estimate"] is None
    guard = {row["category"]: row for row in axes["guard"]["by_category"]}
    assert guard[unfair]["precision"]["n"] == 1 and guard[unfair]["precision"]["estimate"] is None


def test_it_measures_the_guard_against_the_final_per_response_labels(spavl_taxonomy, people):
    _seed(people)
    guard = build_dashboard(slice_=AgreementSlice())["axes"]["guard"]
    assert guard["responses"] == 66 and guard["threshold"] == 0.5
    # Flagged (P(unsafe) > 0.5): B of 0-19 and A of 20-32, 33 responses, 31 labelled unsafe;
    # labelled unsafe: 18 B of 2-19, 13 A of 20-32 and B of 20, 32 responses.
    assert guard["precision"]["estimate"] == pytest.approx(31 / 33)
    assert guard["precision"]["n"] == 33
    assert guard["recall"]["estimate"] == pytest.approx(31 / 32)
    assert guard["recall"]["n"] == 32
    assert 0 < guard["recall"]["low"] < 31 / 32 < guard["recall"]["high"] < 1
    # Bins of P(unsafe) 0.1 (20 responses, none unsafe), 0.2 (13, one unsafe), 0.8 (13, all
    # unsafe), 0.9 (20, 18 unsafe): gaps 20 * 0.1 + |1 - 13 * 0.2| + 13 * 0.2 + 0.
    assert guard["ece"]["estimate"] == pytest.approx((2 + 1.6 + 2.6 + 0) / 66)
    by_bin = {round(b["low"], 1): b for b in guard["bins"]}
    assert by_bin[0.2]["n"] == 13 and by_bin[0.2]["unsafe_share"] == pytest.approx(1 / 13)
    assert by_bin[0.9]["mean_p_unsafe"] == pytest.approx(0.9)
    assert by_bin[0.5]["n"] == 0 and by_bin[0.5]["unsafe_share"] is None


def test_it_measures_severity_agreement_as_the_reference_implementations(spavl_taxonomy, people):
    levels = _seed(people)["levels"]
    severity = build_dashboard(slice_=AgreementSlice())["axes"]["severity"]
    assert severity["levels"] == ["safe", "minor", "moderate", "severe"]
    two = [unit for unit in levels if len(unit) == 2]
    assert severity["kappa_linear"]["n"] == len(two) == 62
    assert severity["kappa_linear"]["estimate"] == pytest.approx(
        cohen_kappa_score(
            [unit[0] for unit in two],
            [unit[1] for unit in two],
            weights="linear",
            labels=[0, 1, 2, 3],
        )
    )
    data = np.full((3, len(levels)), np.nan)
    for column, unit in enumerate(levels):
        data[: len(unit), column] = unit
    assert severity["alpha_ordinal"]["n"] == 66
    assert severity["alpha_ordinal"]["estimate"] == pytest.approx(
        krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")
    )
    low, high = severity["alpha_ordinal"]["low"], severity["alpha_ordinal"]["high"]
    assert low < severity["alpha_ordinal"]["estimate"] < high


def test_the_csv_carries_the_axis_guard_and_severity_figures(spavl_taxonomy, people):
    _seed(people)
    result = build_dashboard(slice_=AgreementSlice())
    rows = {(r["section"], r["group"], r["measure"]): r for r in flatten_dashboard(result)}
    assert rows[("axis_safer", "judge_vs_people", "kappa")]["estimate"] == pytest.approx(376 / 469)
    assert rows[("guard", "overall", "precision")]["n"] == 33
    assert rows[("severity", "overall", "alpha_ordinal")]["n"] == 66
    assert rows[("axis_helpful", "judge_vs_people", "percent")]["withheld"]


def test_the_page_csv_and_api_agree_on_the_new_figures(spavl_taxonomy, people, staff_admin, client):
    _seed(people)
    client.force_login(staff_admin)
    api = client.get("/api/v1/agreement/").json()
    result = build_dashboard(slice_=AgreementSlice())
    assert api["axes"] == result["axes"]
    table = list(csv.DictReader(io.StringIO(client.get("/agreement.csv").content.decode())))
    assert any(row["section"] == "severity" for row in table)
    page = client.get("/agreement/").content.decode()
    assert "Per-response safety: the judge as a guard" in page
    assert "safe &lt; minor &lt; moderate &lt; severe" in page


def test_a_safety_label_write_moves_the_data_version(spavl_taxonomy, people):
    if connection.vendor != "postgresql":
        pytest.skip("the write counters are PostgreSQL triggers")
    review = _axis_review(make_agreement_campaign(), make_pair(), people[0], safer="a")
    before = data_version()
    _label(review, side="a", level=2)
    after_insert = data_version()
    ResponseSafetyLabel.objects.update(severity="severe")
    assert len({before, after_insert, data_version()}) == 3

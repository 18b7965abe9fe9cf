"""/api/v1/pairs/, /questions/, /responses/ through HTTP with tokens: every filter narrows to
exactly the rows it names, cursor pages walk every row once even while rows are inserted, a
page costs the same queries whatever its size, and a pair's detail shows its judgement, its
history, and its reviews only to those who may see them."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from annotation.models import FinalLabel, ImportBatch, QuestionType, TaxonomyNode
from annotation.services.final_label import set_final_label
from spavl_web.tokens import create_token
from tests.factories import (
    make_agreement_campaign,
    make_agreement_review,
    make_judgement,
    make_labelled_pair,
    make_pair,
    make_pool_pair,
    make_question,
    make_sampled_pairs,
)

pytestmark = pytest.mark.django_db


def _with_perm(name: str, codename: str) -> User:
    user = User.objects.create_user(name)
    user.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=user.pk)


def _api(user: User, *scopes: str) -> Client:
    _, secret = create_token(user=user, name="test", scopes=list(scopes or ["read"]))
    return Client(HTTP_AUTHORIZATION=f"Token {secret}")


def _node(node: TaxonomyNode | None) -> TaxonomyNode:
    assert node is not None
    return node


@pytest.fixture
def analyst() -> Client:
    return _api(_with_perm("analyst", "view_agreement"))


def _ids(client: Client, url: str, **params: Any) -> list[int]:
    response = client.get(url, params)
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_each_pair_filter_names_exactly_its_pairs(spavl_taxonomy: None, analyst: Client) -> None:
    bully = make_labelled_pair(subcategory_key="bully")
    subcategory = _node(bully.question.subcategory)
    domain = _node(_node(subcategory.parent).parent)
    outside = TaxonomyNode.objects.subcategories().exclude(parent__parent=domain)
    elsewhere = make_labelled_pair(subcategory_key=_node(outside.first()).key)
    hard = make_pair(question=make_question(question_type=QuestionType.HARD_QUESTION))
    sampled = make_sampled_pairs(count=2)
    make_judgement(pair=sampled[0], p_a_better=0.51)
    flagged = make_judgement(pair=sampled[1], p_a_better=0.5)
    flagged.needs_review = True
    flagged.save(update_fields=["needs_review"])
    batch = ImportBatch.objects.create(file_name="x.json", sha256="", format="rlhf-json")
    elsewhere.import_batch = batch
    elsewhere.save(update_fields=["import_batch"])
    campaign = make_agreement_campaign()
    make_pool_pair(campaign=campaign, pair=hard)

    every = {bully.pk, elsewhere.pk, hard.pk, *(p.pk for p in sampled)}
    assert set(_ids(analyst, "/api/v1/pairs/")) == every
    for node in (subcategory, _node(subcategory.parent), domain):
        under = set(_ids(analyst, "/api/v1/pairs/", taxonomy=node.pk))
        assert bully.pk in under and elsewhere.pk not in under, node.level
    assert _ids(analyst, "/api/v1/pairs/", question_type="hardq") == [hard.pk]
    assert _ids(analyst, "/api/v1/pairs/", final_label="none") == sorted(
        [hard.pk, *(p.pk for p in sampled)]
    )
    assert _ids(analyst, "/api/v1/pairs/", final_label="imported") == [bully.pk, elsewhere.pk]
    assert _ids(analyst, "/api/v1/pairs/", judged="true") == [p.pk for p in sampled]
    assert sampled[0].pk not in _ids(analyst, "/api/v1/pairs/", judged="false")
    assert _ids(analyst, "/api/v1/pairs/", needs_review="true") == [sampled[1].pk]
    assert _ids(analyst, "/api/v1/pairs/", campaign=campaign.pk) == [hard.pk]
    assert _ids(analyst, "/api/v1/pairs/", import_batch=batch.pk) == [elsewhere.pk]
    assert _ids(analyst, "/api/v1/pairs/", model="model-a") == sorted(every)
    assert _ids(analyst, "/api/v1/pairs/", model="nobody") == []


def test_a_pair_row_carries_its_question_responses_and_latest_judgement(
    spavl_taxonomy: None, analyst: Client
) -> None:
    pair = make_labelled_pair(subcategory_key="bully")
    make_judgement(pair=pair, p_a_better=0.2)
    newest = make_judgement(pair=pair, p_a_better=0.9, backend="transformers")
    (row,) = analyst.get("/api/v1/pairs/").json()["results"]
    assert row["judgement"]["id"] == newest.pk and row["judgement"]["p_a_better"] == 0.9
    assert row["question"]["subcategory"]["classes"] == list(
        _node(pair.question.subcategory).class_keys()
    )
    assert row["question"]["image_url"] == f"/images/{pair.question.image_id}/"
    assert (row["response_a"]["id"], row["response_b"]["model"]) == (pair.response_a_id, "model-b")
    assert (row["final_label"], row["final_chosen"]) == ("imported", "a")


def test_cursor_pages_walk_every_pair_once_while_pairs_are_inserted(
    spavl_taxonomy: None, analyst: Client
) -> None:
    make_sampled_pairs(count=7)
    seen: list[int] = []
    url: str | None = "/api/v1/pairs/?page_size=3"
    inserted = 0
    while url:
        page = analyst.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
        if inserted < 2:  # a writer adds a pair between every page read
            make_sampled_pairs(count=1)
            inserted += 1
    assert seen == sorted(set(seen)) and len(seen) == 9


def test_a_page_costs_the_same_queries_whatever_its_size(
    spavl_taxonomy: None, analyst: Client
) -> None:
    for pair in make_sampled_pairs(count=30):
        make_judgement(pair=pair)
    _ids(analyst, "/api/v1/pairs/")  # the token's first use records itself once
    counts = []
    for size in (2, 30):
        with CaptureQueriesContext(connection) as queries:
            assert len(_ids(analyst, "/api/v1/pairs/", page_size=size)) == size
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_bad_filters_answer_400_naming_the_parameter(analyst: Client) -> None:
    for params, name in (
        ({"taxonomy": "bully"}, "taxonomy"),
        ({"final_label": "maybe"}, "final_label"),
        ({"judged": "perhaps"}, "judged"),
        ({"question_type": "hardd"}, "question_type"),
        ({"campaign": "0"}, "campaign"),
    ):
        response = analyst.get("/api/v1/pairs/", params)
        assert response.status_code == 400 and name in response.json(), (params, response.json())
    assert analyst.get("/api/v1/pairs/", {"cursor": "garbage"}).status_code == 404


def test_pair_detail_shows_reviews_to_analysts_and_history_to_every_reader(
    spavl_taxonomy: None, analyst: Client, reviewer: User
) -> None:
    pair = make_sampled_pairs(count=1)[0]
    campaign = make_agreement_campaign()
    make_agreement_review(campaign=campaign, pair=pair, reviewer=reviewer, blind="a")
    set_final_label(pair=pair, label=FinalLabel.CONFIRMED, chosen="a", reason="test", by=None)
    exporter = _api(_with_perm("exporter", "run_export"))
    seen = analyst.get(f"/api/v1/pairs/{pair.pk}/").json()
    assert [r["reviewer"] for r in seen["reviews"]] == ["rita"]
    assert seen["reviews"][0]["blind_verdict"] == "a"
    assert [h["new_label"] for h in seen["final_label_history"]] == ["confirmed"]
    by_exporter = exporter.get(f"/api/v1/pairs/{pair.pk}/").json()
    assert by_exporter["reviews"] is None and by_exporter["final_label_history"]


def test_reviewers_see_no_data_and_missing_rows_are_404(
    spavl_taxonomy: None, analyst: Client, reviewer: User
) -> None:
    pair = make_labelled_pair()
    blind = _api(reviewer)
    for url in ("/api/v1/pairs/", f"/api/v1/pairs/{pair.pk}/", "/api/v1/questions/"):
        assert blind.get(url).status_code == 404
    assert analyst.get("/api/v1/pairs/999999/").status_code == 404


def test_questions_and_responses_list_and_detail(spavl_taxonomy: None, analyst: Client) -> None:
    pair = make_labelled_pair(subcategory_key="bully")
    unlabelled = make_question(subcategory_key=None, question_type=QuestionType.EASY)
    questions = _ids(analyst, "/api/v1/questions/")
    assert questions == [pair.question_id, unlabelled.pk]
    assert _ids(analyst, "/api/v1/questions/", question_type="easy") == [unlabelled.pk]
    assert _ids(analyst, "/api/v1/questions/", model="model-b") == [pair.question_id]
    detail = analyst.get(f"/api/v1/questions/{pair.question_id}/").json()
    assert sorted(r["id"] for r in detail["responses"]) == [pair.response_a_id, pair.response_b_id]
    assert detail["subcategory"]["path"] == _node(pair.question.subcategory).path
    assert _ids(analyst, "/api/v1/responses/", model="model-a") == [pair.response_a_id]
    response = analyst.get(f"/api/v1/responses/{pair.response_b_id}/").json()
    assert (response["question_id"], response["model"]) == (pair.question_id, "model-b")


def test_the_hand_written_pair_rows_are_what_the_declared_serializer_says(
    spavl_taxonomy: None,
) -> None:
    """PairSerializer writes its rows by hand for speed; DRF's own walk over the declared
    fields (which the schema documents) must give the same row, key for key."""
    from rest_framework import serializers

    from annotation.api.data import PairDetailSerializer, PairSerializer
    from annotation.services.browse import DataFilters, pairs_matching

    labelled = make_labelled_pair(subcategory_key="bully")
    make_judgement(pair=labelled, p_a_better=0.3)
    unlabelled = make_question(subcategory_key=None)
    make_pair(question=unlabelled)
    for pair in pairs_matching(DataFilters()):
        for kind in (PairSerializer, PairDetailSerializer):
            fast = kind(context={}).to_representation(pair)
            declared = serializers.ModelSerializer.to_representation(kind(context={}), pair)
            assert fast == dict(declared), (kind.__name__, pair.pk)

"""GET /api/v1/taxonomy/: SPA-VL's 6 domains, 15 categories and 53 subcategories as a tree, the
dataset's strings byte for byte, retired nodes marked, the version bumped by each edit."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from annotation.models import TaxonomyNode
from annotation.services.taxonomy import merge_nodes, rename_node

pytestmark = pytest.mark.django_db


def _tree(client: Client) -> dict:
    response = client.get("/api/v1/taxonomy/")
    assert response.status_code == 200
    return response.json()


def test_it_gives_the_whole_taxonomy_as_a_tree_with_the_datasets_strings(spavl_taxonomy):
    client = Client()
    client.force_login(User.objects.create_user("rita"))
    with CaptureQueriesContext(connection) as queries:
        tree = _tree(client)
    categories = [c for d in tree["domains"] for c in d["children"]]
    subcategories = [s for c in categories for s in c["children"]]
    assert (len(tree["domains"]), len(categories), len(subcategories)) == (6, 15, 53)
    keys = {node["key"] for node in [*tree["domains"], *categories, *subcategories]}
    # The dataset's typos, byte for byte.
    assert {"disablity discrimination", "scamns", "Representation & ToxicityHarms"} <= keys
    assert len(queries) <= 6  # session, user, nodes, version


def test_edits_show_with_a_new_version_and_retired_nodes_stay_marked(spavl_taxonomy):
    client = Client()
    client.force_login(User.objects.create_user("rita"))
    before = _tree(client)["version"]
    bully = TaxonomyNode.objects.get(key="bully")
    rename_node(node=bully, name="Bullying")
    harass = TaxonomyNode.objects.get(key="harass")
    merge_nodes(source=harass, target=bully)
    tree = _tree(client)
    flat = {s["key"]: s for d in tree["domains"] for c in d["children"] for s in c["children"]}
    assert tree["version"] > before
    assert flat["bully"]["name"] == "Bullying"
    assert flat["harass"]["retired"] is True and flat["harass"]["merged_into"] == bully.pk


# Edits over the API: admins only, through the admin's services, labels following the nodes.

NODES = "/api/v1/taxonomy/nodes/"


def _admin_api() -> Client:
    from spavl_web.tokens import create_token

    _, secret = create_token(
        user=User.objects.create_superuser("ada"), name="taxonomy", scopes=["admin"]
    )
    return Client(HTTP_AUTHORIZATION=f"Token {secret}")


def test_admins_create_rename_move_merge_retire_and_restore_over_the_api(spavl_taxonomy):
    from tests.factories import make_question

    api = _admin_api()
    bully = TaxonomyNode.objects.get(key="bully")
    labelled = make_question(subcategory_key="bully")
    assert bully.parent is not None
    created = api.post(
        NODES, {"level": 3, "key": " spaced  key ", "parent": bully.parent_id}, "application/json"
    )
    assert created.status_code == 201, created.json()
    new = created.json()
    assert new["key"] == "spaced  key" and new["path"].endswith(" / spaced  key")
    renamed = api.patch(f"{NODES}{bully.pk}/", {"name": "Bullying"}, "application/json").json()
    assert (renamed["key"], renamed["name"]) == ("bully", "Bullying")
    other_category = TaxonomyNode.objects.filter(level=2).exclude(pk=bully.parent_id).first()
    assert other_category is not None
    moved = api.patch(
        f"{NODES}{bully.pk}/", {"key": "bullying", "parent": other_category.pk}, "application/json"
    ).json()
    assert moved["parent"] == other_category.pk and moved["key"] == "bullying"
    merged = api.post(f"{NODES}{bully.pk}/merge/", {"into": new["id"]}, "application/json").json()
    assert merged["retired"] and merged["merged_into"] == new["id"]
    labelled.refresh_from_db()
    assert labelled.subcategory_id == new["id"], "labels follow the merge"
    assert api.post(f"{NODES}{bully.pk}/restore/").status_code == 409
    retired = api.post(f"{NODES}{new['id']}/retire/").json()
    assert retired["retired"] and retired["version"] > new["version"]
    assert api.post(f"{NODES}{new['id']}/restore/").json()["retired"] is False


def test_edits_that_cannot_be_made_say_why(spavl_taxonomy):
    api = _admin_api()
    bully = TaxonomyNode.objects.get(key="bully")
    domain = TaxonomyNode.objects.filter(level=1).first()
    assert domain is not None
    clash = api.post(
        NODES, {"level": 3, "key": "bully", "parent": bully.parent_id}, "application/json"
    )
    wrong_level = api.patch(f"{NODES}{bully.pk}/", {"parent": domain.pk}, "application/json")
    no_parent = api.post(NODES, {"level": 2, "key": "orphan"}, "application/json")
    missing = api.patch(f"{NODES}{bully.pk}/", {"parent": 999_999}, "application/json")
    nul = api.post(NODES, {"level": 1, "key": "a\u0000b"}, "application/json")
    for answer in (wrong_level, no_parent, missing, nul):
        assert answer.status_code == 400, answer.json()
    assert clash.status_code == 409 and "already called" in clash.json()["detail"]
    assert "can only move under" in wrong_level.json()["detail"]
    assert TaxonomyNode.objects.get(pk=bully.pk).parent_id == bully.parent_id


def test_only_admins_edit_the_taxonomy(spavl_taxonomy):
    from spavl_web.tokens import create_token

    bully = TaxonomyNode.objects.get(key="bully")
    analyst = Client()
    analyst.force_login(User.objects.create_user("rita"))
    assert analyst.post(f"{NODES}{bully.pk}/retire/").status_code == 404
    _, secret = create_token(user=User.objects.create_superuser("root"), name="r", scopes=["read"])
    read_only = Client(HTTP_AUTHORIZATION=f"Token {secret}")
    assert read_only.post(f"{NODES}{bully.pk}/retire/").status_code == 403
    assert not TaxonomyNode.objects.get(pk=bully.pk).is_retired

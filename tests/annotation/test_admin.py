import pytest

from annotation.models import TaxonomyChange, TaxonomyNode
from tests.factories import make_pair, make_question, subcategory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, staff_admin, spavl_taxonomy):
    client.force_login(staff_admin)
    return client


def test_the_taxonomy_list_shows_question_counts_at_every_level(
    admin_client, django_assert_max_num_queries
):
    for _ in range(3):
        make_question(subcategory_key="bully")
    make_question(subcategory_key="hate")
    with django_assert_max_num_queries(12):
        response = admin_client.get("/admin/annotation/taxonomynode/?o=-6")
    assert response.status_code == 200
    rows = {node.key: node for node in response.context["cl"].result_list}
    assert rows["bully"].n_questions == 3
    assert rows["Toxic"].n_questions == 4
    assert rows["Representation & ToxicityHarms"].n_questions == 4


def test_renaming_in_the_change_form_goes_through_the_service(admin_client):
    node = subcategory("scamns")
    question = make_question(subcategory_key="scamns")
    response = admin_client.post(
        f"/admin/annotation/taxonomynode/{node.pk}/change/",
        {"key": "scams", "name": "Scams", "parent": node.parent_id},
    )
    assert response.status_code == 302
    question.refresh_from_db()
    assert question.subcategory.key == "scams"
    assert TaxonomyChange.objects.filter(action="rename", old_value="scamns").exists()


def test_moving_in_the_change_form_is_recorded(admin_client):
    node = subcategory("bully")
    unfair = TaxonomyNode.objects.get(level=2, key="Unfair")
    admin_client.post(
        f"/admin/annotation/taxonomynode/{node.pk}/change/",
        {"key": "bully", "name": "bully", "parent": unfair.pk},
    )
    node.refresh_from_db()
    assert node.parent == unfair
    assert TaxonomyChange.objects.filter(action="move", node=node).exists()


def test_the_merge_action_asks_for_a_target_then_relabels(admin_client, staff_admin):
    question = make_question(subcategory_key="harass")
    source, target = subcategory("harass"), subcategory("bully")
    url = "/admin/annotation/taxonomynode/"
    form = admin_client.post(url, {"action": "merge_into", "_selected_action": [source.pk]})
    assert form.status_code == 200 and b"Merge taxonomy nodes" in form.content
    done = admin_client.post(
        url,
        {
            "action": "merge_into",
            "_selected_action": [source.pk],
            "apply": "1",
            "target": target.pk,
        },
    )
    assert done.status_code == 302
    question.refresh_from_db()
    assert question.subcategory == target
    assert question.label_changes.get().changed_by == staff_admin


def test_the_retire_action_keeps_labels(admin_client):
    question = make_question(subcategory_key="insult")
    node = subcategory("insult")
    admin_client.post(
        "/admin/annotation/taxonomynode/", {"action": "retire", "_selected_action": [node.pk]}
    )
    question.refresh_from_db()
    assert question.subcategory.is_retired and question.subcategory.key == "insult"


@pytest.mark.parametrize(
    "path", ["/admin/annotation/question/", "/admin/annotation/pair/", "/admin/annotation/image/"]
)
def test_the_dataset_lists_render_with_few_queries(
    admin_client, path, django_assert_max_num_queries
):
    for _ in range(5):
        make_pair()
    with django_assert_max_num_queries(12):
        response = admin_client.get(path)
    assert response.status_code == 200
    assert b'<img src="/images/' in response.content


def test_questions_filter_by_domain_and_question_type(admin_client):
    make_question(subcategory_key="bully", question_type="easy")
    make_question(subcategory_key="fake science", question_type="hardq")
    domain = TaxonomyNode.objects.get(level=1, key="Misinformation Harms")
    response = admin_client.get(
        f"/admin/annotation/question/?subcategory__parent__parent__id__exact={domain.pk}"
        "&question_type__exact=hardq"
    )
    assert response.context["cl"].result_count == 1

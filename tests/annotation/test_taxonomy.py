import json

import pytest

from annotation.exceptions import TaxonomyError
from annotation.models import LabelChange, TaxonomyChange, TaxonomyLevel, TaxonomyNode
from annotation.services import taxonomy
from annotation.services.taxonomy import SPAVL_TAXONOMY_FILE, load_taxonomy
from tests.factories import make_question, subcategory

pytestmark = pytest.mark.django_db


def test_it_loads_the_spavl_taxonomy_with_the_datasets_own_spellings(spavl_taxonomy):
    counts = {level: TaxonomyNode.objects.filter(level=level).count() for level in TaxonomyLevel}
    assert counts == {1: 6, 2: 15, 3: 53}
    keys = set(TaxonomyNode.objects.values_list("key", flat=True))
    assert {
        "Representation & ToxicityHarms",
        "disablity discrimination",
        "scamns",
        "false beliefs",
        "Human Autonomy & IntegrityHarms",
    } <= keys


def test_it_loads_every_triple_of_the_shipped_file_byte_for_byte(spavl_taxonomy):
    triples = json.loads(SPAVL_TAXONOMY_FILE.read_text(encoding="utf-8"))["triples"]
    loaded = {n.class_keys() for n in TaxonomyNode.objects.subcategories().with_paths()}
    assert loaded == {tuple(t) for t in triples}


def test_it_loads_twice_without_creating_anything(spavl_taxonomy):
    result = load_taxonomy()
    assert (result.created, result.existing) == (0, 74)
    assert TaxonomyChange.current_version() == 1


def test_a_rename_keeps_labels_and_bumps_the_version(spavl_taxonomy, staff_admin):
    question = make_question(subcategory_key="scamns")
    node = subcategory("scamns")
    taxonomy.rename_node(node=node, key="scams", name="Scams", by=staff_admin)
    question.refresh_from_db()
    assert question.subcategory.key == "scams"
    renames = TaxonomyChange.objects.filter(action="rename").order_by("version")
    assert [(c.old_value, c.new_value, c.changed_by) for c in renames] == [
        ("scamns", "scams", staff_admin),
        ("scamns", "Scams", staff_admin),
    ]
    assert TaxonomyChange.current_version() == 3  # load, key rename, display-name rename


def test_a_rename_to_a_taken_key_is_refused(spavl_taxonomy):
    with pytest.raises(TaxonomyError, match="already called"):
        taxonomy.rename_node(node=subcategory("bully"), key="harass")


def test_a_move_changes_the_path_and_keeps_the_label(spavl_taxonomy):
    question = make_question(subcategory_key="bully")
    unfair = TaxonomyNode.objects.get(level=2, key="Unfair")
    taxonomy.move_node(node=subcategory("bully"), new_parent=unfair)
    question.refresh_from_db()
    assert question.subcategory.class_keys() == (
        "Representation & ToxicityHarms",
        "Unfair",
        "bully",
    )


def test_a_subcategory_cannot_move_under_a_domain(spavl_taxonomy):
    domain = TaxonomyNode.objects.get(level=1, key="Misinformation Harms")
    with pytest.raises(TaxonomyError, match="only move under a category"):
        taxonomy.move_node(node=subcategory("bully"), new_parent=domain)


def test_a_merge_relabels_every_question_and_records_each_change(spavl_taxonomy, staff_admin):
    questions = [make_question(subcategory_key="harass") for _ in range(3)]
    untouched = make_question(subcategory_key="hate")
    source, target = subcategory("harass"), subcategory("bully")
    taxonomy.merge_nodes(source=source, target=target, by=staff_admin)
    for question in questions:
        question.refresh_from_db()
        assert question.subcategory == target
        assert question.taxonomy_version == TaxonomyChange.current_version()
    untouched.refresh_from_db()
    assert untouched.subcategory.key == "hate"
    source.refresh_from_db()
    assert source.is_retired and source.merged_into == target
    history = LabelChange.objects.filter(old_subcategory=source, new_subcategory=target)
    assert history.count() == 3
    assert set(history.values_list("changed_by", flat=True)) == {staff_admin.pk}


def test_a_category_merge_moves_its_subcategories(spavl_taxonomy):
    toxic = TaxonomyNode.objects.get(level=2, key="Toxic")
    unfair = TaxonomyNode.objects.get(level=2, key="Unfair")
    question = make_question(subcategory_key="ageism")
    taxonomy.merge_nodes(source=unfair, target=toxic)
    question.refresh_from_db()
    assert question.subcategory.parent == toxic
    assert TaxonomyNode.objects.active().filter(parent=toxic).count() == 13


def test_retiring_hides_a_node_from_pickers_and_keeps_labels(spavl_taxonomy):
    question = make_question(subcategory_key="insult")
    taxonomy.retire_node(node=subcategory("insult"))
    assert not TaxonomyNode.objects.active().filter(key="insult").exists()
    question.refresh_from_db()
    assert question.subcategory.key == "insult" and question.subcategory.is_retired
    taxonomy.restore_node(node=question.subcategory)
    assert TaxonomyNode.objects.active().filter(key="insult").exists()


def test_relabelling_a_question_keeps_its_history(spavl_taxonomy, reviewer):
    question = make_question(subcategory_key="bully")
    taxonomy.relabel_question(
        question=question, subcategory=subcategory("hate"), reason="review", by=reviewer
    )
    change = question.label_changes.get()
    assert (change.old_subcategory.key, change.new_subcategory.key, change.changed_by) == (
        "bully",
        "hate",
        reviewer,
    )


def test_relabelling_to_a_retired_subcategory_is_refused(spavl_taxonomy):
    question = make_question(subcategory_key="bully")
    retired = taxonomy.retire_node(node=subcategory("hate"))
    with pytest.raises(TaxonomyError, match="not a live subcategory"):
        taxonomy.relabel_question(question=question, subcategory=retired, reason="x")

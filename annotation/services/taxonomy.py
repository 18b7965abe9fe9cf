"""Taxonomy workflows: load, rename, move, merge, retire, relabel. Each edit bumps the version."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from django.contrib.auth.models import User as AuthUser
from django.db import transaction
from django.utils import timezone

from annotation.exceptions import TaxonomyConflict, TaxonomyError
from annotation.models import (
    LabelChange,
    Question,
    TaxonomyAction,
    TaxonomyChange,
    TaxonomyLevel,
    TaxonomyNode,
)

SPAVL_TAXONOMY_FILE = Path(__file__).resolve().parent.parent / "data" / "spavl_taxonomy.json"

User = AuthUser | None


@dataclass(frozen=True)
class LoadResult:
    created: int
    existing: int
    version: int


def _record(
    *, action: str, node: TaxonomyNode | None, old: str = "", new: str = "", by: User
) -> TaxonomyChange:
    # Callers hold a transaction; the unique version makes concurrent edits fail, not interleave.
    return TaxonomyChange.objects.create(
        version=TaxonomyChange.current_version() + 1,
        action=action,
        node=node,
        old_value=old[:500],
        new_value=new[:500],
        changed_by=by,
    )


def _get_or_create_node(
    *, level: int, key: str, name: str, parent: TaxonomyNode | None
) -> tuple[TaxonomyNode, bool]:
    node = TaxonomyNode.objects.active().filter(level=level, key=key).first()
    if node is not None:
        if node.parent_id != (parent.pk if parent else None):
            raise TaxonomyError(f"{key!r} exists under another parent: {node.path}")
        return node, False
    return TaxonomyNode.objects.create(level=level, key=key, name=name, parent=parent), True


@transaction.atomic
def load_taxonomy(*, path: Path = SPAVL_TAXONOMY_FILE, by: User = None) -> LoadResult:
    """Create the nodes of a taxonomy file that are missing; existing nodes are left as edited."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        domains = document["domains"]
    except (OSError, ValueError, KeyError) as error:
        raise TaxonomyError(f"cannot read taxonomy file {path}: {error}") from error
    created = existing = 0
    for domain in domains:
        d, new = _get_or_create_node(
            level=TaxonomyLevel.DOMAIN, key=domain["class1"], name=domain["display"], parent=None
        )
        created, existing = created + new, existing + (not new)
        for category in domain["categories"]:
            c, new = _get_or_create_node(
                level=TaxonomyLevel.CATEGORY,
                key=category["class2"],
                name=category["display"],
                parent=d,
            )
            created, existing = created + new, existing + (not new)
            for key in category["subcategories"]:
                _, new = _get_or_create_node(
                    level=TaxonomyLevel.SUBCATEGORY, key=key, name=key, parent=c
                )
                created, existing = created + new, existing + (not new)
    if created:
        _record(action=TaxonomyAction.LOAD, node=None, new=f"{path.name}: {created} nodes", by=by)
    return LoadResult(created=created, existing=existing, version=TaxonomyChange.current_version())


def _lock(node_id: int) -> TaxonomyNode:
    return TaxonomyNode.objects.select_for_update().get(pk=node_id)


@transaction.atomic
def rename_node(
    *, node: TaxonomyNode, key: str | None = None, name: str | None = None, by: User = None
) -> TaxonomyNode:
    """Change a node's dataset key and/or display name. Labels point at the node: none move."""
    node = _lock(node.pk)
    if key is not None and key != node.key:
        clash = TaxonomyNode.objects.active().filter(level=node.level, key=key).exclude(pk=node.pk)
        if clash.exists():
            raise TaxonomyConflict(f"another {node.get_level_display()} is already called {key!r}")
        _record(action=TaxonomyAction.RENAME, node=node, old=node.key, new=key, by=by)
        node.key = key
    if name is not None and name != node.name:
        _record(action=TaxonomyAction.RENAME, node=node, old=node.name, new=name, by=by)
        node.name = name
    node.save(update_fields=["key", "name"])
    return node


@transaction.atomic
def move_node(*, node: TaxonomyNode, new_parent: TaxonomyNode, by: User = None) -> TaxonomyNode:
    """Put a category under another domain, or a subcategory under another category."""
    node = _lock(node.pk)
    if new_parent.level != node.level - 1:
        raise TaxonomyError(
            f"a {node.get_level_display()} can only move under a "
            f"{TaxonomyLevel(node.level - 1).label}"
        )
    if new_parent.is_retired:
        raise TaxonomyError(f"{new_parent.path} is retired")
    if node.parent_id == new_parent.pk:
        return node
    old_path = node.path
    node.parent = new_parent
    node.save(update_fields=["parent"])
    _record(action=TaxonomyAction.MOVE, node=node, old=old_path, new=node.path, by=by)
    return node


def _relabel(
    *, questions: list[Question], to: TaxonomyNode | None, reason: str, version: int, by: User
) -> None:
    changes = [
        LabelChange(
            question=q,
            old_subcategory_id=q.subcategory_id,
            new_subcategory=to,
            taxonomy_version=version,
            reason=reason,
            changed_by=by,
        )
        for q in questions
    ]
    LabelChange.objects.bulk_create(changes, batch_size=1000)
    Question.objects.filter(pk__in=[q.pk for q in questions]).update(
        subcategory=to, taxonomy_version=version
    )


@transaction.atomic
def merge_nodes(*, source: TaxonomyNode, target: TaxonomyNode, by: User = None) -> TaxonomyNode:
    """Merge ``source`` into ``target`` (same level): its questions or children move to target.

    The source is retired and remembers its target, so old exports and history stay readable.
    """
    source, target = _lock(source.pk), _lock(target.pk)
    if source.pk == target.pk or source.level != target.level:
        raise TaxonomyError("merge needs two different nodes of the same level")
    if source.is_retired or target.is_retired:
        raise TaxonomyError("cannot merge retired nodes")
    change = _record(
        action=TaxonomyAction.MERGE, node=source, old=source.path, new=target.path, by=by
    )
    TaxonomyNode.objects.filter(parent=source).update(parent=target)
    questions = list(Question.objects.filter(subcategory=source).only("pk", "subcategory_id"))
    _relabel(
        questions=questions,
        to=target,
        reason=f"merge {source.key} into {target.key}",
        version=change.version,
        by=by,
    )
    source.retired_at, source.merged_into = timezone.now(), target
    source.save(update_fields=["retired_at", "merged_into"])
    return target


@transaction.atomic
def retire_node(*, node: TaxonomyNode, by: User = None) -> TaxonomyNode:
    """Hide a node from pickers. Labels on it are kept; so are its children."""
    node = _lock(node.pk)
    if node.is_retired:
        return node
    node.retired_at = timezone.now()
    node.save(update_fields=["retired_at"])
    _record(action=TaxonomyAction.RETIRE, node=node, old=node.path, by=by)
    return node


@transaction.atomic
def restore_node(*, node: TaxonomyNode, by: User = None) -> TaxonomyNode:
    node = _lock(node.pk)
    if not node.is_retired:
        return node
    if node.merged_into_id is not None:
        raise TaxonomyError(f"{node.path} was merged; its labels now live on the target")
    if TaxonomyNode.objects.active().filter(level=node.level, key=node.key).exists():
        raise TaxonomyConflict(f"a live node is already called {node.key!r}")
    node.retired_at = None
    node.save(update_fields=["retired_at"])
    _record(action=TaxonomyAction.RESTORE, node=node, new=node.path, by=by)
    return node


@transaction.atomic
def relabel_question(
    *, question: Question, subcategory: TaxonomyNode, reason: str, by: User = None
) -> Question:
    """Set a question's subcategory, keeping the old one in its label history."""
    if subcategory.level != TaxonomyLevel.SUBCATEGORY or subcategory.is_retired:
        raise TaxonomyError(f"{subcategory.path} is not a live subcategory")
    question = Question.objects.select_for_update().get(pk=question.pk)
    if question.subcategory_id == subcategory.pk:
        return question
    version = TaxonomyChange.current_version()
    _relabel(questions=[question], to=subcategory, reason=reason, version=version, by=by)
    question.refresh_from_db(fields=["subcategory", "taxonomy_version"])
    return question


def subcategory_index() -> dict[tuple[str, str, str], TaxonomyNode]:
    """(class1, class2, class3) -> live subcategory, for importers resolving dataset strings."""
    nodes = TaxonomyNode.objects.active().subcategories().with_paths()
    return {node.class_keys(): node for node in nodes}


@transaction.atomic
def create_node(
    *, level: int, key: str, name: str, parent: TaxonomyNode | None, by: User = None
) -> TaxonomyNode:
    """Add a node by hand (the admin), recorded in the same transaction."""
    if level not in TaxonomyLevel.values:
        raise TaxonomyError(f"unknown taxonomy level {level!r}")
    key, name = key.strip(), name.strip()
    if not key:
        raise TaxonomyError("a node needs a key")
    if level == TaxonomyLevel.DOMAIN and parent is not None:
        raise TaxonomyError("a domain has no parent")
    if level != TaxonomyLevel.DOMAIN and (parent is None or parent.level != level - 1):
        raise TaxonomyError(
            f"a {TaxonomyLevel(level).label} needs a {TaxonomyLevel(level - 1).label} as parent"
        )
    if parent is not None and _lock(parent.pk).is_retired:
        raise TaxonomyError(f"{parent.path} is retired")
    if TaxonomyNode.objects.active().filter(level=level, key=key).exists():
        raise TaxonomyConflict(f"another {TaxonomyLevel(level).label} is already called {key!r}")
    node = TaxonomyNode.objects.create(level=level, key=key, name=name or key, parent=parent)
    _record(action=TaxonomyAction.CREATE, node=node, new=node.path, by=by)
    return node


@transaction.atomic
def edit_node(
    *,
    node: TaxonomyNode,
    key: str,
    name: str,
    parent: TaxonomyNode | None,
    by: User = None,
) -> TaxonomyNode:
    """A rename and a move as one change: both happen, or neither."""
    node = rename_node(node=node, key=key, name=name, by=by)
    if parent is not None and parent.pk != node.parent_id:
        node = move_node(node=node, new_parent=parent, by=by)
    return node


class TreeNode(TypedDict):
    id: int
    key: str
    name: str
    retired: bool
    merged_into: int | None
    children: list[TreeNode]


class Tree(TypedDict):
    version: int
    domains: list[TreeNode]


def taxonomy_tree() -> Tree:
    """The whole taxonomy as a tree (domains, categories, subcategories; retired nodes kept and
    marked), with its current version, in two queries."""
    nodes = list(
        TaxonomyNode.objects.order_by("level", "key").values(
            "id", "key", "name", "parent_id", "retired_at", "merged_into_id"
        )
    )
    built: dict[int, TreeNode] = {
        node["id"]: TreeNode(
            id=node["id"],
            key=node["key"],
            name=node["name"],
            retired=node["retired_at"] is not None,
            merged_into=node["merged_into_id"],
            children=[],
        )
        for node in nodes
    }
    roots: list[TreeNode] = []
    for node in nodes:
        parent = built.get(node["parent_id"]) if node["parent_id"] is not None else None
        (parent["children"] if parent is not None else roots).append(built[node["id"]])
    return Tree(version=TaxonomyChange.current_version(), domains=roots)

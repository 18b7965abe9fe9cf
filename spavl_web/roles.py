"""The roles of the studio, defined once. Every access gate (annotation.access, judging.access)
and every template flag is built on these predicates.

What each role is made of:

============== ==============================================================================
role           means
============== ==============================================================================
admin          a superuser, or a member of the ``admin`` group
adjudicator    an admin, or a member of the ``adjudicator`` group
analyst        an adjudicator, or holds ``annotation.view_agreement``: reads the agreement
               dashboard, its CSV and its API
exporter       an admin, or holds ``annotation.run_export``: starts exports and reads their
               own jobs (admins read every job)
judge watcher  a judge operator, or holds ``judging.view_judgerun``: sees the judge runs
judge operator an admin, or holds ``judging.change_judgerun``: starts and cancels runs
data reader    an analyst, an exporter or a judge watcher: reads questions, responses, pairs,
               their judgements and final labels (reviews only as an analyst)
importer       an admin, or holds ``annotation.add_importbatch``: pushes data in, follows imports
reviewer       of one campaign: listed among its reviewers while it is active
============== ==============================================================================

``is_staff`` alone means what it means in Django: "may log into the admin" (where the model
permissions decide what they see). It grants no role here. Permissions count whether given to
the user or to one of their groups (``User.has_perm``); an inactive user has none.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group, Permission, User
from django.db.models import CharField, F, Q, Value

AnyUser = AbstractBaseUser | AnonymousUser

ADMIN_GROUP = "admin"
ADJUDICATOR_GROUP = "adjudicator"
VIEW_AGREEMENT = "annotation.view_agreement"
RUN_EXPORT = "annotation.run_export"
VIEW_JUDGE_RUNS = "judging.view_judgerun"
OPERATE_JUDGE = "judging.change_judgerun"
RUN_IMPORT = "annotation.add_importbatch"


def _active(user: AnyUser) -> User | None:
    return user if isinstance(user, User) and user.is_active else None


def _facts(user: User) -> tuple[frozenset[str], frozenset[str]]:
    """The user's group names and permissions ("app_label.codename", given to them or to one
    of their groups), in one query, kept on the request's user object."""
    cached: tuple[frozenset[str], frozenset[str]] | None = user.__dict__.get("_spavl_roles")
    if cached is None:
        groups = Group.objects.filter(user=user).annotate(
            kind=Value("", output_field=CharField()), key=F("name")
        )
        permissions = Permission.objects.filter(Q(user=user) | Q(group__user=user)).annotate(
            kind=F("content_type__app_label"), key=F("codename")
        )
        rows = (
            groups.order_by()
            .values_list("kind", "key")
            .union(permissions.order_by().values_list("kind", "key"))
        )
        names = frozenset(key for kind, key in rows if not kind)
        perms = frozenset(f"{kind}.{key}" for kind, key in rows if kind)
        cached = user.__dict__["_spavl_roles"] = (names, perms)
    return cached


def _in_group(user: User, name: str) -> bool:
    return name in _facts(user)[0]


def _has_perm(user: User, permission: str) -> bool:
    """As ``User.has_perm`` with Django's model backend (the one this project uses), in the
    same single query as the groups."""
    return user.is_superuser or permission in _facts(user)[1]


def is_admin(user: AnyUser) -> bool:
    found = _active(user)
    return found is not None and (found.is_superuser or _in_group(found, ADMIN_GROUP))


def is_adjudicator(user: AnyUser) -> bool:
    found = _active(user)
    return found is not None and (is_admin(found) or _in_group(found, ADJUDICATOR_GROUP))


def is_analyst(user: AnyUser) -> bool:
    found = _active(user)
    return found is not None and (is_adjudicator(found) or _has_perm(found, VIEW_AGREEMENT))


def is_exporter(user: AnyUser) -> bool:
    found = _active(user)
    return found is not None and (is_admin(found) or _has_perm(found, RUN_EXPORT))


def is_judge_operator(user: AnyUser) -> bool:
    found = _active(user)
    return found is not None and (is_admin(found) or _has_perm(found, OPERATE_JUDGE))


def is_judge_watcher(user: AnyUser) -> bool:
    found = _active(user)
    return found is not None and (is_judge_operator(found) or _has_perm(found, VIEW_JUDGE_RUNS))


def is_data_reader(user: AnyUser) -> bool:
    found = _active(user)
    return found is not None and (
        is_analyst(found) or is_exporter(found) or is_judge_watcher(found)
    )


def is_importer(user: AnyUser) -> bool:
    found = _active(user)
    return found is not None and (is_admin(found) or _has_perm(found, RUN_IMPORT))

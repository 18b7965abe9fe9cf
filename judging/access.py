"""Access gates for judge runs: staff see them, only those who may change runs start or cancel.

Everyone else gets 404, as for every other object a user may not see.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.http import Http404

from judging.models import JudgeRun

AnyUser = AbstractBaseUser | AnonymousUser


def access_judge_runs(*, user: AnyUser) -> None:
    if not user.is_authenticated or not getattr(user, "is_staff", False):
        raise Http404


def access_judge_run(*, user: AnyUser, run_id: int) -> JudgeRun:
    access_judge_runs(user=user)
    try:
        return JudgeRun.objects.select_related("configuration", "started_by").get(pk=run_id)
    except JudgeRun.DoesNotExist:
        raise Http404 from None


def can_manage_judge_runs(*, user: AnyUser) -> bool:
    return isinstance(user, User) and user.is_staff and user.has_perm("judging.change_judgerun")


def access_judge_run_management(*, user: AnyUser) -> User:
    """The user who may start and cancel runs (admins), or 404."""
    if not isinstance(user, User) or not can_manage_judge_runs(user=user):
        raise Http404
    return user

"""Every access gate of the judging app, on the roles of spavl_web.roles: judge watchers see the
runs (judge and generation runs), judge operators start and cancel them. Everyone else gets
404, as for every other object a user may not see."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import Http404
from django.shortcuts import get_object_or_404

from judging.models import GenerationRun, JudgeRun
from spavl_web.roles import AnyUser, is_judge_operator, is_judge_watcher


def access_judge_runs(*, user: AnyUser) -> None:
    if not is_judge_watcher(user):
        raise Http404


def access_judge_run(*, user: AnyUser, run_id: int) -> JudgeRun:
    access_judge_runs(user=user)
    return get_object_or_404(
        JudgeRun.objects.select_related("configuration", "started_by"), pk=run_id
    )


def access_generation_run(*, user: AnyUser, run_id: int) -> GenerationRun:
    """Generation runs are seen and managed by the same roles as judge runs."""
    access_judge_runs(user=user)
    return get_object_or_404(GenerationRun.objects.select_related("started_by"), pk=run_id)


def can_manage_judge_runs(*, user: AnyUser) -> bool:
    return is_judge_operator(user)


def access_judge_run_management(*, user: AnyUser) -> User:
    """The user who may start and cancel runs (judge operators), or 404."""
    if not isinstance(user, User) or not is_judge_operator(user):
        raise Http404
    return user

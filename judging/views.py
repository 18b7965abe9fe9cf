"""Judge runs pages: the list with live progress, one run's numbers, start and cancel."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotation.exceptions import DomainError
from judging.access import (
    access_judge_run,
    access_judge_run_management,
    access_judge_runs,
    can_manage_judge_runs,
)
from judging.forms import StartRunForm
from judging.models import JudgeRun
from judging.services import cancel_run, start_run
from spavl_web.http import Request

RUNS_SHOWN = 50


@require_GET
def runs(request: Request) -> HttpResponse:
    access_judge_runs(user=request.user)
    return _render_runs(request, form=StartRunForm())


def _render_runs(request: Request, *, form: StartRunForm, status: int = 200) -> HttpResponse:
    runs = JudgeRun.objects.with_activity().select_related("configuration", "started_by")
    shown = list(runs[:RUNS_SHOWN])
    context = {
        "runs": shown,
        "any_active": any(run.is_active for run in shown),
        "form": form,
        "can_manage": can_manage_judge_runs(user=request.user),
    }
    template = "judging/runs.html#runs_table" if request.htmx else "judging/runs.html"
    return render(request, template, context, status=status)


@require_POST
def start(request: Request) -> HttpResponse:
    user = access_judge_run_management(user=request.user)
    form = StartRunForm(request.POST)
    if not form.is_valid():
        return _render_runs(request, form=form, status=400)
    try:
        run = start_run(**form.cleaned_data, by=user)
    except DomainError as exc:
        form.add_error(None, str(exc))
        return _render_runs(request, form=form, status=400)
    messages.success(request, f"Started judge run {run.pk} on {run.total} pairs.")
    return redirect("judging:run", run_id=run.pk)


@require_GET
def run_detail(request: Request, run_id: int) -> HttpResponse:
    run = access_judge_run(user=request.user, run_id=run_id)
    context = {"run": run, "can_manage": can_manage_judge_runs(user=request.user)}
    template = "judging/run_detail.html#run_summary" if request.htmx else "judging/run_detail.html"
    return render(request, template, context)


@require_POST
def cancel(request: Request, run_id: int) -> HttpResponse:
    user = access_judge_run_management(user=request.user)
    run = access_judge_run(user=user, run_id=run_id)
    try:
        cancel_run(run_id=run.pk, by=user)
        messages.success(request, f"Cancelled judge run {run.pk}.")
    except DomainError as exc:
        messages.error(request, str(exc))
    return redirect("judging:run", run_id=run.pk)

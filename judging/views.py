"""Judge and generation runs pages: the lists with live progress, one run's numbers, start and
cancel. The web tier never loads a model: starting a run only records it and sends its batches."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotation.exceptions import DomainError
from judging.access import (
    access_generation_run,
    access_judge_run,
    access_judge_run_management,
    access_judge_runs,
    can_manage_judge_runs,
)
from judging.forms import StartGenerationForm, StartRunForm
from judging.models import GenerationConfiguration, GenerationRun, JudgeRun
from judging.services import (
    cancel_generation_run,
    cancel_run,
    start_generation_run,
    start_run,
)
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


@require_GET
def generation_runs(request: Request) -> HttpResponse:
    access_judge_runs(user=request.user)
    return _render_generation_runs(request, form=StartGenerationForm())


def _render_generation_runs(
    request: Request, *, form: StartGenerationForm, status: int = 200
) -> HttpResponse:
    shown = list(GenerationRun.objects.with_activity().select_related("started_by")[:RUNS_SHOWN])
    context = {
        "runs": shown,
        "any_active": any(run.is_active for run in shown),
        "form": form,
        "can_manage": can_manage_judge_runs(user=request.user),
    }
    template = "judging/generation.html#runs_table" if request.htmx else "judging/generation.html"
    return render(request, template, context, status=status)


@require_POST
def start_generation(request: Request) -> HttpResponse:
    user = access_judge_run_management(user=request.user)
    form = StartGenerationForm(request.POST)
    if not form.is_valid():
        return _render_generation_runs(request, form=form, status=400)
    try:
        run = start_generation_run(**form.service_arguments(), by=user)
    except DomainError as exc:
        form.add_error(None, str(exc))
        return _render_generation_runs(request, form=form, status=400)
    messages.success(request, f"Started generation run {run.pk}: {run.total} responses to make.")
    return redirect("judging:generation_run", run_id=run.pk)


@require_GET
def generation_run_detail(request: Request, run_id: int) -> HttpResponse:
    run = access_generation_run(user=request.user, run_id=run_id)
    configurations = run.batches.filter(configuration__isnull=False).values_list(
        "model_index", "configuration"
    )
    context = {
        "run": run,
        "can_manage": can_manage_judge_runs(user=request.user),
        "models": _model_rows(run, dict(configurations.distinct())),
    }
    template = (
        "judging/generation_run.html#run_summary" if request.htmx else "judging/generation_run.html"
    )
    return render(request, template, context)


def _model_rows(run: GenerationRun, resolved: dict[int, int]) -> list[dict[str, object]]:
    """Per model asked for: what was asked, the configuration a worker resolved (if any yet)
    and its batches by status."""
    configurations = GenerationConfiguration.objects.in_bulk(resolved.values())
    counts: dict[int, dict[str, int]] = {}
    for model_index, status in run.batches.values_list("model_index", "status"):
        per = counts.setdefault(model_index, {})
        per[status] = per.get(status, 0) + 1
    return [
        {
            "asked": entry,
            "configuration": configurations.get(resolved.get(index, 0)),
            "batches": sorted(counts.get(index, {}).items()),
        }
        for index, entry in enumerate(run.requested_models)
    ]


@require_POST
def cancel_generation(request: Request, run_id: int) -> HttpResponse:
    user = access_judge_run_management(user=request.user)
    run = access_generation_run(user=user, run_id=run_id)
    try:
        cancel_generation_run(run_id=run.pk, by=user)
        messages.success(request, f"Cancelled generation run {run.pk}.")
    except DomainError as exc:
        messages.error(request, str(exc))
    return redirect("judging:generation_run", run_id=run.pk)

"""The export page: definitions, a start form per definition, jobs with live progress and
downloads. Files download through the API's file endpoint (session auth, same gate, ranges)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotation.access import access_exports, visible_export_jobs
from annotation.exceptions import DomainError
from annotation.forms import StartExportForm
from annotation.models import ExportDefinition
from annotation.services.export import start_export_job
from spavl_web.http import Request

JOBS_SHOWN = 30


@require_GET
def page(request: Request) -> HttpResponse:
    user = access_exports(user=request.user)
    if request.htmx:
        return render(request, "annotation/exports.html#jobs", _jobs_context(user))
    return _render_page(request, user=user)


@require_POST
def start(request: Request) -> HttpResponse:
    user = access_exports(user=request.user)
    form = StartExportForm(request.POST)
    if not form.is_valid():
        return _render_page(request, user=user, error=_form_errors(form), status=400)
    try:
        job = start_export_job(
            definition=form.cleaned_data["definition"],
            export_format=form.cleaned_data["format"],
            created_by=user,
        )
    except DomainError as error:
        return _render_page(request, user=user, error=str(error), status=400)
    messages.success(request, f"Started export {job.pk} ({job.get_format_display()}).")
    return redirect(reverse("exports:list") + f"#job-{job.pk}")


def _jobs_context(user: User) -> dict[str, object]:
    jobs = list(visible_export_jobs(user=user)[:JOBS_SHOWN])
    return {"jobs": jobs, "any_active": any(job.is_active for job in jobs)}


def _render_page(
    request: HttpRequest, *, user: User, error: str = "", status: int = 200
) -> HttpResponse:
    context = {
        **_jobs_context(user),
        "definitions": ExportDefinition.objects.all(),
        "start_error": error,
    }
    return render(request, "annotation/exports.html", context, status=status)


def _form_errors(form: StartExportForm) -> str:
    return "; ".join(
        f"{field}: {' '.join(str(error) for error in errors)}"
        for field, errors in form.errors.items()
    )

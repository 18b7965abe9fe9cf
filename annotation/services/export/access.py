"""Access gates for exports: who may run them, and which jobs a user may see."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, User
from django.db.models import QuerySet
from django.http import Http404

from annotation.models import ExportJob

RUN_EXPORT_PERMISSION = "annotation.run_export"


def can_run_exports(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(
        user.is_authenticated
        and (getattr(user, "is_staff", False) or user.has_perm(RUN_EXPORT_PERMISSION))  # type: ignore[union-attr,attr-defined]
    )


def access_exports(*, user: AbstractBaseUser | AnonymousUser) -> User:
    """The user if they may see and start exports (staff, or the run_export permission);
    everyone else gets Http404, as for any page they may not see."""
    if not isinstance(user, User) or not can_run_exports(user):
        raise Http404
    return user


def visible_export_jobs(*, user: User) -> QuerySet[ExportJob]:
    """The jobs a user with export access sees: all for staff, their own otherwise."""
    jobs = ExportJob.objects.select_related("definition", "created_by")
    return jobs if user.is_staff else jobs.filter(created_by_id=user.pk)


def access_export_job(*, user: AbstractBaseUser | AnonymousUser, job_id: int) -> ExportJob:
    """The job if the user may see it: their own with the export permission, any for staff.
    Missing and not-yours both raise Http404."""
    if not can_run_exports(user):
        raise Http404
    jobs = ExportJob.objects.select_related("definition")
    if not getattr(user, "is_staff", False):
        jobs = jobs.filter(created_by_id=user.pk)
    try:
        return jobs.get(pk=job_id)
    except ExportJob.DoesNotExist:
        raise Http404 from None


def access_export_file(*, job: ExportJob, name: str) -> Path:
    """The path of a finished file of the job. Only names recorded as finished are served (never
    a ``.partial`` being written), and the path must stay inside the job's folder."""
    if job.finished_file(name) is None:
        raise Http404
    root = Path(job.output_dir).resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise Http404
    return path

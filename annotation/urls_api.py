"""API routes of the annotation app under /api/v1/. The API authenticates itself (session or
token) and answers 401/403, so its views are exempt from LoginRequiredMiddleware's redirect."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from annotation import api_export

urlpatterns = [
    path(
        "exports/",
        login_not_required(api_export.ExportCreateApi.as_view()),
        name="api-export-create",
    ),
    path(
        "exports/<int:job_id>/",
        login_not_required(api_export.ExportDetailApi.as_view()),
        name="api-export-detail",
    ),
    path(
        "exports/<int:job_id>/files/<path:name>",
        login_not_required(api_export.ExportFileApi.as_view()),
        name="api-export-file",
    ),
]

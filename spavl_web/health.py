"""The health check every container probe calls: answered before anything else runs."""

from __future__ import annotations

from collections.abc import Callable

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse

HEALTH_PATH = "/healthz"


class HealthCheckMiddleware:
    """Answers ``/healthz`` first, so a probe from inside the container (plain HTTP, Host
    127.0.0.1) is neither redirected to HTTPS nor refused by ALLOWED_HOSTS. It says "ok" only
    when the database answers; nothing else is exempt from those checks."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info != HEALTH_PATH:
            return self.get_response(request)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError as error:
            return JsonResponse({"status": "error", "database": str(error)[:200]}, status=503)
        return JsonResponse({"status": "ok"})
